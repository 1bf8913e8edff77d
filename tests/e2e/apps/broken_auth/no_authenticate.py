from langgraph_sdk import Auth

auth = Auth()  # no @auth.authenticate


@auth.on
async def allow(ctx, value):
    return True
