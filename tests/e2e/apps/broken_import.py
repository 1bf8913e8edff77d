"""An http.app whose import fails, for the startup-error test."""

raise ImportError("no module named 'definitely_missing_dependency'")
