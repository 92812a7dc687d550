"""What a team writes by hand to serve an ONNX model: FastAPI on uvicorn, onnxruntime, orjson.

The model is MLOPS_BENCH_MODEL. POST /invocations takes {"instances": [[...], ...]} and answers
{"predictions": [{"label": ..., "probabilities": [...]}, ...]}, as mlops serve does; GET /ping
answers 200 once the model is loaded (the app loads it at import).
"""

import os

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse, Response

session = ort.InferenceSession(
    os.environ["MLOPS_BENCH_MODEL"], providers=["CPUExecutionProvider"]
)
name = session.get_inputs()[0].name
app = FastAPI()


@app.get("/ping")
def ping():
    return Response(status_code=200)


@app.post("/invocations")
async def invocations(request: Request):
    body = orjson.loads(await request.body())
    x = np.asarray(body["instances"], dtype=np.float32)
    labels, probabilities = session.run(None, {name: x})
    return ORJSONResponse(
        {
            "predictions": [
                {"label": str(label), "probabilities": p}
                for label, p in zip(labels.tolist(), probabilities.tolist())
            ]
        }
    )
