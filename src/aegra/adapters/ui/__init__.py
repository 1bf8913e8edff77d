"""Generative UI: building the component bundles with Node (``build``) and serving the
built files (``assets``)."""
