"""Graphs whose input schema can be generated on Python 3.11 (``typing_extensions``
TypedDicts: pydantic refuses ``typing.TypedDict`` there), so they are offered as MCP
tools (tests/e2e/test_mcp.py): ``echo`` (a message list), ``count`` (a required integer
and an optional string), ``who`` (the caller's identity, the run context's ``tone``, the
``x-mcp-test`` header), ``boom`` (raises)."""

from typing import Annotated, Any, NotRequired

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class Chat(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def _reply(state: Chat) -> Chat:
    last = state["messages"][-1].content if state.get("messages") else ""
    return {"messages": [AIMessage(content=f"echo: {last}")]}


class Count(TypedDict):
    count: int
    label: NotRequired[str]


def _count(state: Count) -> dict[str, Any]:
    return {"label": f"{state.get('label', 'n')}={state['count']}"}


class Who(TypedDict, total=False):
    identity: str | None
    tone: str | None
    header: str | None


def _whoami(state: Who, config: RunnableConfig, runtime: Runtime) -> Who:
    configurable = config.get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    return {"identity": user["identity"] if user is not None else None,
            "tone": (runtime.context or {}).get("tone"),
            "header": configurable.get("x-mcp-test")}


class Text(TypedDict, total=False):
    text: str


def _boom(state: Text) -> Text:
    raise ValueError(f"boom: {state.get('text')}")


def _single(schema: type, node: Any) -> Any:
    builder = StateGraph(schema)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile()


echo = _single(Chat, _reply)
count = _single(Count, _count)
who = _single(Who, _whoami)
boom = _single(Text, _boom)
