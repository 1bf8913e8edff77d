"""LangGraph lives wholly in this package (STYLE §3)."""
