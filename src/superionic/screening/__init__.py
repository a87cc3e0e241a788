"""Materials Project screening track (Kang 2023 funnel) on the 2019 snapshot.

Stages (``superionic <stage>``, dvc.yaml section "screening"):

* ``mp-pool`` (:mod:`.pool`): Li entries, band gap, anion class (:mod:`.anions`);
* ``thermo`` (:mod:`.thermo`, physics in :mod:`.hull`): E_hull and Li
  stability window (V_red, V_ox) from one PhaseDiagram per chemical system,
  checked against Wang et al. 2024 (:mod:`.esw`);
* ``funnel`` (:mod:`.funnel`): the paper's four filters with counted reasons;
* ``screen-predict`` (:mod:`.predict`): the classifier ensemble's votes on the
  survivors, applicability domain, overlap with the training data;
* ``screen-report`` (:mod:`.report`): ``reports/screening.md``.
"""
