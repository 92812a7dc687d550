"""An MLServer runtime for an ONNX model on onnxruntime (MLServer ships none: MLServer#2360),
written as MLServer's docs show custom runtimes. It takes one FP32 input tensor and answers the
labels and the probabilities."""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        labels, probabilities = self.session.run(None, {self.input: x})
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("label", labels),
                NumpyCodec.encode_output("probabilities", probabilities),
            ],
        )
