"""Accuracy where the model runs: the board runs the dataset, the controller scores the outputs.

The cell's own worker runs every input through the model after it measured (bench `--dataset`,
see orchestrator.runner): no second process, no second model load. The outputs stream back over
the agent session and are scored here (orchestrator.accuracy.task). Where a reference is needed
that the run does not measure (fp32 of a model benchmarked only as variants), the agent's
`outputs` request runs it. A failure of this step never discards the latency result: it is
reported in `accuracy_error` and the accuracy columns stay empty. fp32's scored outputs are kept
per model, so each other variant gets its accuracy change and its fidelity to fp32 on the same
board.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.agent_client import staged_file_name
from orchestrator.boards import Board
from orchestrator.errors import AgentError, FarmError, TransportError
from orchestrator.hashing import file_sha256
from orchestrator.plan import Cell, ModelFiles
from orchestrator.settings import BenchSettings

if TYPE_CHECKING:
    from orchestrator.agent_session import BenchReply
    from orchestrator.board_link import BoardLink


class BoardAccuracy:
    """Runs a cell's dataset on one board and scores it; keeps fp32 outputs for fidelity."""

    def __init__(self, link: "BoardLink", settings: BenchSettings, board: Board) -> None:
        self.link = link
        self.settings = settings
        self.board = board
        # (model name, sweep point) -> (fp32 accuracy, scored output): each point's own reference
        self._fp32: dict[tuple[str, str], tuple[float, Any]] = {}

    @staticmethod
    def can_share_worker(cell: Cell) -> bool:
        """The cell's bench worker can run its dataset (one model file that ran the benchmark)."""
        return cell.dataset is not None

    def evaluate(self, cell: Cell, reply: "BenchReply | None" = None) -> dict[str, Any]:
        """The accuracy export fields of `cell` on this board (or `accuracy_error`). `reply`: the
        cell's last bench, whose outputs are used when its worker ran the dataset."""
        from orchestrator.accuracy.task import score_outputs

        task = cell.dataset
        assert task is not None
        error = reply.result.get("outputs_error") if reply is not None else None
        if error:
            return {"accuracy_metric": task.metric, "accuracy": None, "accuracy_error": str(error)[:500]}
        key = (cell.model.name, cell.sweep)
        settings = cell.settings if cell.settings is not None else self.settings
        try:
            if cell.variant != "fp32" and key not in self._fp32 and cell.reference_path is not None:
                reference = score_outputs(task, self._outputs(ModelFiles(cell.reference_path), task, None, settings),
                                          None)
                self._fp32[key] = (reference.value, reference.scored_output)
            baseline = self._fp32.get(key)
            if reply is not None and reply.outputs is not None:
                outputs = reply.outputs.arrays()
            else:
                outputs = self._outputs(cell.files, task, cell.runtime, settings)
            score = score_outputs(task, outputs, baseline[1] if baseline else None)
        except (TransportError, AgentError, FarmError, ValueError, OSError, KeyError) as exc:
            return {"accuracy_metric": task.metric, "accuracy": None, "accuracy_error": str(exc)[:500]}
        if cell.variant == "fp32":
            self._fp32[key] = (score.value, score.scored_output)
            baseline = self._fp32[key]
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

    def _outputs(self, files: ModelFiles, task, variant_runtime: str | None = None,  # noqa: ANN001
                 settings: BenchSettings | None = None) -> list[Any]:
        """Run the dataset through the model on the board (the agent's `outputs`, in a process of
        its own); return the outputs in model order."""
        session = self.link.ensure()
        staged = [(path, staged_file_name(path, suffix), file_sha256(path.resolve()))
                  for _, path, suffix in files.uploads()]
        staged.append((task.inputs_npz, staged_file_name(task.inputs_npz, ".npz"), file_sha256(task.inputs_npz.resolve())))
        paths, _ = session.stage(staged)
        model_args = [arg for (option, _, _), path in zip(files.uploads(), paths) for arg in (option, path)]
        settings = settings or self.settings
        args = [*model_args, "--dataset", paths[-1], *settings.runtime_args(self.board, variant_runtime)]
        outputs = session.outputs(args, timeout_s=self.settings.job_timeout_s)
        try:
            return outputs.arrays()
        finally:
            outputs.discard()
