"""Detection reports: the typed :class:`DetectionReport`, its JSON Schema, and the writers.

    report = avdetect.detect("clip.mp4")
    data = report.to_dict()                     # what every writer reads
    write_reports(data, json="r.json", html="r.html", vtt="r.vtt", csv="r.csv")

Writers take only the serialised dict (or a JSON file written earlier), never the model or
the media, so a saved report can be rendered again anywhere.
"""
from avdetect.report.model import (SCHEMA_VERSION, DetectionReport, ModalityResult, Provenance, QualityWarning,
                                   Segment, Thumbnail, Tracks, VerdictReason)
from avdetect.report.schema import SCHEMA_FILE, load_report_dict, load_schema, validate_report
from avdetect.report.writers import to_csv, to_html, to_json, to_vtt, write_reports

__all__ = ["SCHEMA_VERSION", "SCHEMA_FILE", "DetectionReport", "ModalityResult", "Provenance", "QualityWarning",
           "Segment", "Thumbnail", "Tracks", "VerdictReason", "load_report_dict", "load_schema", "validate_report", "to_csv",
           "to_html", "to_json", "to_vtt", "write_reports"]
