"""The baseline: a bare FastAPI endpoint that only answers 200, served like hookwatch."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/hooks/replicate")
async def receive() -> dict[str, str]:
    return {"status": "recorded"}
