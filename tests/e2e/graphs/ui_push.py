"""A node that answers with an AI message and a Generative UI component for it
(``push_ui_message``), as the platform's Generative UI docs show."""

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.ui import AnyUIMessage, push_ui_message, ui_message_reducer


class State(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]
    ui: Annotated[list[AnyUIMessage], ui_message_reducer]


def weather(state: State) -> dict[str, Any]:
    message = AIMessage(id="ai-weather-1", content="Here is the weather")
    push_ui_message("weather", {"city": "Paris", "temperature": 21}, id="ui-weather-1",
                    message=message)
    return {"messages": [message]}


builder = StateGraph(State)
builder.add_node("weather", weather)
builder.add_edge(START, "weather")
builder.add_edge("weather", END)
graph = builder.compile()
