auth = object()  # not a langgraph_sdk.Auth
