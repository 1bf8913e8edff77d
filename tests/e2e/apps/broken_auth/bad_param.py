from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str, tenant: str) -> str:
    return "x"
