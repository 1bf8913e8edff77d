"""A user FastAPI app for ``http.app``: served beside aegra's own routes, on Trio."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

state = {"started": 0, "stopped": 0}


@asynccontextmanager
async def lifespan(_app: FastAPI):
    state["started"] += 1
    yield
    state["stopped"] += 1


app = FastAPI(lifespan=lifespan)


class Echo(BaseModel):
    text: str
    times: int = 1


@app.get("/custom/hello")
async def hello(name: str = "world") -> dict:
    return {"hello": name, "started": state["started"]}


@app.post("/custom/echo")
async def echo(body: Echo) -> dict:
    return {"echo": body.text * body.times}


@app.get("/custom/sync")
def sync_route() -> dict:
    # A sync endpoint runs in anyio's worker thread: on Trio here.
    return {"sync": True}


@app.get("/ok")
async def shadowed() -> dict:
    return {"user": "ok"}  # never served: aegra's /ok wins


@app.post("/info")
async def post_info() -> dict:
    return {"user": "post-info"}  # aegra's /info is GET only, so POST reaches the user


@asynccontextmanager
async def failing_lifespan(_app: FastAPI):
    raise RuntimeError("user startup exploded")
    yield


failing_app = FastAPI(lifespan=failing_lifespan)
