"""The use cases: one small class per resource over the ports (docs/architecture.md, Layers).

A handler in ``aegra.api`` decodes the request, calls one service method with the
caller, and encodes the result. Authorization happens here, and the filter it yields is
handed to the store, which applies it inside its query.
"""
