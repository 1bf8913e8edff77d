"""Reports who the server says is running it: the identity keys of ``configurable``."""

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    user_id: str | None
    identity: str | None
    attr_identity: str | None
    permissions: list[str] | None
    display_name: str | None
    client_user_id: Any


def whoami(state: State, config: RunnableConfig) -> State:
    conf = config.get("configurable") or {}
    user = conf.get("langgraph_auth_user")
    return {
        "user_id": conf.get("langgraph_auth_user_id"),
        "identity": user["identity"] if user is not None else None,
        "attr_identity": getattr(user, "identity", None),
        "permissions": list(conf.get("langgraph_auth_permissions") or []) or None,
        "display_name": getattr(user, "display_name", None),
        "client_user_id": conf.get("user_id"),
    }


builder = StateGraph(State)
builder.add_node("whoami", whoami)
builder.add_edge(START, "whoami")
builder.add_edge("whoami", END)
graph = builder.compile()
