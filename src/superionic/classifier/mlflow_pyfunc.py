"""MLflow model code for the ensemble: formulas in, ``superionic predict``'s table out.

This file is not imported by the package. The ensemble stage hands its path
to ``mlflow.pyfunc.log_model`` (MLflow's "models from code"), so the logged
model carries this code and the fitted ensemble as an artifact, not a pickle
of a Python object. That is why the module ends by registering the model
with ``mlflow.models.set_model``: it is MLflow's entry point, run when the
model is loaded.

    model = mlflow.pyfunc.load_model("runs:/<run id>/ensemble")
    model.predict(pd.DataFrame({"formula": ["Li7La3Zr2O12", "Li3PS4"]}))

The ensemble file is unpickled only when its SHA-256 matches the digest
recorded at logging time (model config ``sha256``).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from superionic.classifier.ensemble import MLFLOW_ARTIFACT, MLFLOW_FORMULA_COLUMN, MLFLOW_SHA256


class EnsemblePyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from superionic.classifier.ensemble import load_ensemble

        config = context.model_config or {}
        self.formula_column = str(config[MLFLOW_FORMULA_COLUMN])
        self.ensemble = load_ensemble(context.artifacts[MLFLOW_ARTIFACT], expected_sha256=config[MLFLOW_SHA256])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from superionic.classifier.predict import predict_frame

        return predict_frame(pd.DataFrame(model_input), self.ensemble, self.formula_column)


mlflow.models.set_model(EnsemblePyfunc())
