"""Accuracy where the model runs: the board runs the dataset, the controller scores the outputs.

The agent (verb `outputs`) runs every input through the model on the board and saves the
outputs there; they are fetched and scored here (orchestrator.accuracy.task). A failure of this
step never discards the latency result: it is reported in `accuracy_error` and the accuracy
columns stay empty. fp32's scored outputs are kept per model, so each other variant gets its
accuracy change and its fidelity to fp32 on the same board.
"""
from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.agent_client import AgentClient
from orchestrator.boards import Board
from orchestrator.errors import AgentError, FarmError, TransportError
from orchestrator.plan import Cell, ModelFiles
from orchestrator.settings import BenchSettings


class BoardAccuracy:
    """Runs a cell's dataset on one board and scores it; keeps fp32 outputs for fidelity."""

    def __init__(self, client: AgentClient, settings: BenchSettings, board: Board) -> None:
        self.client = client
        self.settings = settings
        self.board = board
        self._fp32: dict[str, tuple[float, Any]] = {}  # model name -> (fp32 accuracy, scored output)

    def evaluate(self, cell: Cell) -> dict[str, Any]:
        """The accuracy export fields of `cell` on this board (or `accuracy_error`)."""
        from orchestrator.accuracy.task import score_outputs

        task = cell.dataset
        assert task is not None
        try:
            if cell.variant != "fp32" and cell.model.name not in self._fp32 and cell.reference_path is not None:
                reference = score_outputs(task, self._outputs(ModelFiles(cell.reference_path), task), None)
                self._fp32[cell.model.name] = (reference.value, reference.scored_output)
            baseline = self._fp32.get(cell.model.name)
            outputs = self._outputs(cell.files, task, cell.runtime)
            score = score_outputs(task, outputs, baseline[1] if baseline else None)
        except (TransportError, AgentError, FarmError, ValueError, OSError) as exc:
            return {"accuracy_metric": task.metric, "accuracy": None, "accuracy_error": str(exc)[:500]}
        if cell.variant == "fp32":
            self._fp32[cell.model.name] = (score.value, score.scored_output)
            baseline = self._fp32[cell.model.name]
        fields: dict[str, Any] = {
            "accuracy_metric": score.metric,
            "accuracy": score.value,
            "accuracy_delta": None if baseline is None else score.value - baseline[0],
            "accuracy_samples": task.count,
            "dataset_sha256": task.sha256,
        }
        fields.update(score.extra)
        if cell.variant == "fp32":
            fields.update(fidelity_cosine=1.0)
        return fields

    def _outputs(self, files: ModelFiles, task, variant_runtime: str | None = None) -> list[Any]:
        """Run the dataset through the model on the board; return the outputs in model order."""
        import numpy as np

        model_args, _ = self.client.stage_files(files.uploads())
        board_data, _ = self.client.stage(task.inputs_npz, suffix=".npz")
        board_out = f"{self.client.transport.workdir}/outputs-{secrets.token_hex(6)}.npz"
        args = [*model_args, "--dataset", board_data, "--out", board_out,
                *self.settings.runtime_args(self.board, variant_runtime)]
        self.client.call("outputs", args, timeout_s=self.settings.job_timeout_s)
        with tempfile.TemporaryDirectory(prefix="farm-outputs-") as tmp:
            local = Path(tmp) / "outputs.npz"
            try:
                self.client.transport.fetch_file(board_out, local)
            finally:
                self.client.transport.run(["rm", "-f", board_out], timeout_s=30)
            with np.load(local, allow_pickle=False) as data:
                return [data[f"output_{i}"] for i in range(len(data.files))]
