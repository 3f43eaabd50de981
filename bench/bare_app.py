"""The baseline: a bare FastAPI endpoint that reads the body and answers 200, served like
hookwatch (same uvicorn, uvloop, httptools)."""

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/hooks/replicate")
async def receive(request: Request) -> dict[str, str]:
    await request.body()
    return {"status": "recorded"}
