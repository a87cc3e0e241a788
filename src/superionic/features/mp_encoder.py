"""A composition model pre-trained on Materials Project energies and band gaps, reused as features.

The conductivity set has 652 materials; the Materials Project files here have
84,295 compositions with a DFT formation energy and band gap. A network that
has to predict those two numbers from the composition alone must learn how
elements combine (which pairs bond ionically, which form stable frameworks,
which leave a compound metallic). Its internal composition vector is then a
representation of chemistry that no conductivity label paid for, which is
what an unseen chemical system or structure family needs.

Architecture (Roost-like, without message passing): every element starts from
its frozen Matscholar embedding, a small MLP maps it to ``width`` dimensions,
and the composition is pooled twice: amount-weighted mean, and soft attention
whose logits are a learned gate plus log(fraction) (so a dopant at 1 % can
still matter if the gate says so). Two heads read the pooled vector: formation
energy per atom and band gap (both standardised, equal weight).

The transferred features are the pooled vector (``2 * width`` columns) and the
two predicted properties. Training is seeded and single-process deterministic
on CPU; ``validation_fraction`` of the compositions are held out (random) to
report the pre-training error, and never used for the fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# raw-file columns (../shared/datasets/materials_project/, see its README)
MP_ID = "task_id"
MP_COMPOSITION = "composition"
MP_FORMATION_ENERGY = "formation_energy_per_atom"
MP_BAND_GAP = "band_gap"
TARGETS = (MP_FORMATION_ENERGY, MP_BAND_GAP)

LATENT_PREFIX = "mp latent"
PREDICTED = {MP_FORMATION_ENERGY: "mp predicted formation energy", MP_BAND_GAP: "mp predicted band gap"}


@dataclass(frozen=True)
class PretrainSettings:
    width: int
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    validation_fraction: float
    seed: int


# --- data -------------------------------------------------------------------


def load_targets(formation_csv: str | Path, band_gap_csv: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per MP id with composition, formation energy and band gap; dropped rows counted by reason."""
    # keep_default_na=False: the composition "NaN" is sodium nitride, not a missing value
    energy = pd.read_csv(formation_csv, keep_default_na=False, dtype={MP_COMPOSITION: str, MP_ID: str})
    gap = pd.read_csv(band_gap_csv, keep_default_na=False, dtype={MP_COMPOSITION: str, MP_ID: str})
    for path, frame, column in ((formation_csv, energy, MP_FORMATION_ENERGY), (band_gap_csv, gap, MP_BAND_GAP)):
        missing = {MP_ID, MP_COMPOSITION, column} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        # empty or non-numeric targets become NaN here and are counted below, not guessed
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    merged = energy.merge(gap[[MP_ID, MP_BAND_GAP]], on=MP_ID, how="outer", indicator=True)
    counts = {"rows": int(len(merged)), "without_both_targets": int((merged["_merge"] != "both").sum())}
    merged = merged[merged["_merge"] == "both"].drop(columns="_merge")
    finite = np.isfinite(merged[list(TARGETS)].to_numpy(dtype=float)).all(axis=1)
    counts["non_finite_target"] = int((~finite).sum())
    merged = merged[finite]
    counts["kept"] = int(len(merged))
    return merged.sort_values(MP_ID).reset_index(drop=True), counts


def parse_amounts(formulas: Sequence[str], source: str) -> tuple[np.ndarray, np.ndarray]:
    """Z-order amount matrix of the formulas that parse, and the mask of those that do."""
    from pymatgen.core import Composition

    from superionic.features.lithium import amount_matrix

    comps, ok = [], np.zeros(len(formulas), dtype=bool)
    for i, text in enumerate(formulas):
        try:
            comp = Composition(str(text))
        except (ValueError, KeyError) as err:
            log.warning("%s row %d: %r is not a composition (%s); skipped", source, i, text, err)
            continue
        if comp.num_atoms > 0:
            comps.append(comp)
            ok[i] = True
    return amount_matrix(comps), ok


def padded(amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(element index, fraction) per row, padded to the widest composition (fraction 0 = padding)."""
    present = amounts > 0
    width = max(1, int(present.sum(axis=1).max(initial=0)))
    # present elements first, in Z order
    order = np.argsort(~present, axis=1, kind="stable")[:, :width]
    taken = np.take_along_axis(amounts, order, axis=1)
    total = amounts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(total > 0, taken / total, 0.0)
    return order.astype(np.int64), fraction


# --- model ------------------------------------------------------------------


def _network(table: np.ndarray, width: int) -> Any:
    import torch
    from torch import nn

    class CompositionNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            known = torch.tensor(np.nan_to_num(table), dtype=torch.float32)
            self.elements = nn.Embedding.from_pretrained(known, freeze=True)
            self.project = nn.Sequential(nn.Linear(known.shape[1], width), nn.SiLU(), nn.Linear(width, width))
            self.gate = nn.Linear(width, 1)
            self.head = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, len(TARGETS)))

        def encode(self, index: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
            h = self.project(self.elements(index))
            present = fraction > 0
            logits = self.gate(h).squeeze(-1) + torch.log(fraction.clamp_min(1e-12))
            attention = torch.softmax(logits.masked_fill(~present, float("-inf")), dim=-1)
            mean = (fraction.unsqueeze(-1) * h).sum(dim=1)
            attended = (attention.unsqueeze(-1) * h).sum(dim=1)
            return torch.cat([mean, attended], dim=-1)

        def forward(self, index: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
            return self.head(self.encode(index, fraction))

    return CompositionNetwork()


@dataclass
class MPEncoder:
    """The pre-trained network with its target scaling; turns amount matrices into features."""

    width: int
    # weights as numpy arrays: a pickled torch tensor is not byte-identical from run to run,
    # and the model file's digest is tracked in git
    state: dict[str, np.ndarray]
    target_mean: np.ndarray
    target_std: np.ndarray

    def _module(self) -> Any:
        from superionic.features.element_embedding import Embedding, embedding_table

        net = _network(embedding_table(Embedding.MATSCHOLAR), self.width)
        import torch

        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        return net.eval()

    def feature_labels(self) -> list[str]:
        return [f"{LATENT_PREFIX} {i}" for i in range(2 * self.width)] + [PREDICTED[t] for t in TARGETS]

    def features_from_amounts(self, amounts: np.ndarray, batch_rows: int = 65_536) -> pd.DataFrame:
        """Pooled latent vector and predicted (formation energy, band gap) of every row; NaN for empty rows."""
        import torch

        net = self._module()
        index, fraction = padded(amounts)
        out = np.full((len(amounts), 2 * self.width + len(TARGETS)), np.nan)
        with torch.no_grad():
            for start in range(0, len(amounts), batch_rows):
                sl = slice(start, start + batch_rows)
                i, f = torch.from_numpy(index[sl]), torch.tensor(fraction[sl], dtype=torch.float32)
                latent = net.encode(i, f)
                predicted = net.head(latent).numpy() * self.target_std + self.target_mean
                out[sl] = np.hstack([latent.numpy(), predicted])
        out[amounts.sum(axis=1) <= 0] = np.nan
        return pd.DataFrame(out, columns=self.feature_labels())


def pretrain(amounts: np.ndarray, targets: np.ndarray, settings: PretrainSettings) -> tuple[MPEncoder, dict[str, Any]]:
    """Fit the network on ``targets`` (rows x TARGETS); report mean absolute errors on the held-out share."""
    import torch

    from superionic.features.element_embedding import Embedding, embedding_table

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    n = len(amounts)
    order = rng.permutation(n)
    n_val = int(round(settings.validation_fraction * n))
    val, train = order[:n_val], order[n_val:]
    mean, std = targets[train].mean(axis=0), targets[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    index, fraction = padded(amounts)
    I = torch.from_numpy(index)
    F = torch.tensor(fraction, dtype=torch.float32)
    Y = torch.tensor((targets - mean) / std, dtype=torch.float32)
    net = _network(embedding_table(Embedding.MATSCHOLAR), settings.width)
    optimiser = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, settings.epochs))
    start = time.perf_counter()
    history = []
    for epoch in range(settings.epochs):
        net.train()
        batches = np.array_split(rng.permutation(train), max(1, len(train) // settings.batch_size))
        total = 0.0
        for rows in batches:
            rows_t = torch.from_numpy(rows)
            optimiser.zero_grad()
            loss = torch.mean((net(I[rows_t], F[rows_t]) - Y[rows_t]) ** 2)
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(rows)
        schedule.step()
        history.append(total / max(1, len(train)))
        elapsed = time.perf_counter() - start
        log.info("pretrain epoch %d/%d: train loss %.4f (%.0f s, ETA %.0f s)", epoch + 1, settings.epochs,
                 history[-1], elapsed, elapsed / (epoch + 1) * (settings.epochs - epoch - 1))  # fmt: skip
    encoder = MPEncoder(settings.width, {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}, mean, std)
    metrics: dict[str, Any] = {"n_train": int(len(train)), "n_validation": int(n_val), "train_loss": history}
    if n_val:
        predicted = encoder.features_from_amounts(amounts[val])[[PREDICTED[t] for t in TARGETS]].to_numpy()
        for k, target in enumerate(TARGETS):
            metrics[f"validation_mae_{target}"] = float(np.mean(np.abs(predicted[:, k] - targets[val, k])))
            metrics[f"validation_mae_{target}_predict_mean"] = float(np.mean(np.abs(mean[k] - targets[val, k])))
    return encoder, metrics


def settings_from(cfg: Any) -> PretrainSettings:
    p = cfg.generalize.pretrain
    return PretrainSettings(width=int(p.width), epochs=int(p.epochs), batch_size=int(p.batch_size),
                            learning_rate=float(p.learning_rate), weight_decay=float(p.weight_decay),
                            validation_fraction=float(p.validation_fraction), seed=int(cfg.seed))  # fmt: skip


@stage("mp-pretrain", sections=["generalize", "seed"])
def run_stage(cfg: Any) -> StageResult:
    """Stage ``mp-pretrain``: fit the composition network on the MP-2019 energies and band gaps."""
    import torch

    from superionic.io import write_json
    from superionic.io import save_model

    p = cfg.generalize.pretrain
    frame, counts = load_targets(p.formation_energy, p.band_gap)
    amounts, parsed = parse_amounts(frame[MP_COMPOSITION].tolist(), str(p.formation_energy))
    counts["unparsable_composition"] = int((~parsed).sum())
    targets = frame.loc[parsed, list(TARGETS)].to_numpy(dtype=float)
    log.info("mp-pretrain: %d compositions (%s)", len(targets), counts)
    # one intra-op thread: the same float summation order on every machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder, metrics = pretrain(amounts, targets, settings_from(cfg))
    finally:
        torch.set_num_threads(threads)
    save_model(encoder, p.model)
    metrics = {"rows": counts, **metrics}
    write_json(metrics, p.metrics, decimals=6)
    log.info("mp-pretrain: validation MAE formation energy %.3f eV/atom, band gap %.3f eV",
             metrics.get(f"validation_mae_{MP_FORMATION_ENERGY}", float("nan")),
             metrics.get(f"validation_mae_{MP_BAND_GAP}", float("nan")))  # fmt: skip
    return StageResult({k: v for k, v in metrics.items() if isinstance(v, float)}, [p.metrics])
