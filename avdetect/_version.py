"""The package version, in one place: ``avdetect.__version__``, pyproject's dynamic version,
checkpoints' ``avdetect_version``, cache_info.json and report provenance all read it here."""
__version__ = "0.1.0"
