"""The green trade-off: what a sparse encoder saves and what it costs at equal rate.

Gille et al. (Table I) compare a sparse encoder with the dense model of the same λ. A
sparse model usually also codes at a different rate, so the fair comparison is at equal
bpp: the dense curve's PSNR at the sparse model's rate, interpolated linearly in log-bpp
between its two neighbouring points (`tfcae.evaluation.bdrate.value_at_rate`), minus
nothing else. Two references answer two questions:

* the dense *curve* (the zoo's ladder of the same family): is the sparse model worse than
  the dense models a user could take instead?  `delta_psnr_at_bpp`;
* the dense *control* (the same warm start fine-tuned dense for the same steps): how much
  of that is the sparsity, not the extra training?  `delta_psnr_against_control` moves the
  control along the dense curve's slope to the sparse model's rate.

Encoder cost is the MACs per input pixel of the reduced encoder
(`tfcae.analysis.accounting`). CompressAI's published models are points of comparison
(their Kodak curves in docs/benchmark, their encoder cost as `REFERENCE_ENCODERS`).
"""
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from tfcae.evaluation.bdrate import value_at_rate

__all__ = ["REFERENCE_ENCODERS", "GILLE_TABLE_I", "DenseCurve", "curve_of_cards",
           "delta_psnr_at_bpp", "delta_psnr_against_control", "attach_controls",
           "tradeoff_panel", "panels_of_table", "fmt", "table1_markdown"]

# Encoder MACs per input pixel of CompressAI's pretrained models at qualities 1-5
# (N = 128, M = 192), counted with tfcae.analysis.accounting's convention (conv
# k²·Cin·Cout/s², GDN C²/s²). bmshj2018-factorized's analysis is four 5×5 stride-2 convs
# with three GDNs: 2,400 + 4,096 + 25,600 + 1,024 + 6,400 + 256 + 2,400 = 42,176; the
# hyperprior adds its hyper-analysis (3×3 M→N, two 5×5 stride-2 N→N at stride 16-64):
# + 864 + 400 + 100 = 43,540. (Qualities 6-8 use N = 192, M = 320: more.)
REFERENCE_ENCODERS = {
    "compressai-bmshj2018-factorized": 42176.,
    "compressai-bmshj2018-hyperprior": 43540.,
}

# Gille, Guyard, Antonini & Barlaud, Table I (encoder only, S ≈ 83 %).
GILLE_TABLE_I = [
    {"method": "ℓ1", "S": 0.83, "macc_reduction": 0.0, "memory_reduction": 0.81,
     "relative_loss_db": -1.15},
    {"method": "ℓ1,1", "S": 0.83, "macc_reduction": 0.27, "memory_reduction": 0.82,
     "relative_loss_db": -1.2},
    {"method": "ℓ1,∞", "S": 0.83, "macc_reduction": 0.40, "memory_reduction": 0.84,
     "relative_loss_db": -1.7},
]


class DenseCurve:
  """A rate-PSNR curve (e.g. a zoo family on Kodak), for equal-rate comparisons.

  Args:
    bpp: the points' rates (bits per pixel, > 0), any order.
    psnr: their PSNR in dB.
    name: what the curve is (for tables and plots).

  Raises:
    ValueError: fewer than two points, mismatched lengths, non-finite values or a rate
      that is not positive.
  """

  def __init__(self, bpp: Sequence[float], psnr: Sequence[float], name: str = ""):
    bpp, psnr = np.asarray(bpp, np.float64).ravel(), np.asarray(psnr, np.float64).ravel()
    if bpp.size != psnr.size or bpp.size < 2:
      raise ValueError(f"a dense curve needs at least two (bpp, PSNR) points, got "
                       f"{bpp.size} rates and {psnr.size} PSNRs")
    if not (np.all(np.isfinite(bpp)) and np.all(bpp > 0) and np.all(np.isfinite(psnr))):
      raise ValueError("a dense curve's rates must be finite and > 0, its PSNRs finite")
    order = np.argsort(bpp)
    self.bpp, self.psnr, self.name = bpp[order], psnr[order], name

  def psnr_at(self, bpp: float) -> Optional[float]:
    """The curve's PSNR at a rate, linear in log-bpp between the neighbouring points.

    Args:
      bpp: the rate, bits per pixel.

    Returns:
      The PSNR in dB, or None outside the curve's range (no extrapolation: the
      comparison would be a guess).
    """
    value = value_at_rate(self.bpp, self.psnr, bpp, "linear")
    return None if np.isnan(value) else value


def curve_of_cards(cards: Iterable[dict], name: str = "") -> DenseCurve:
  """The Kodak rate-PSNR curve of zoo model cards (tfcae.zoo.list()).

  Args:
    cards: model cards with a "kodak" block (bpp, psnr-rgb).
    name: the curve's name (default: the first card's family).

  Returns:
    A DenseCurve.

  Raises:
    ValueError: fewer than two cards (see DenseCurve).
  """
  cards = list(cards)
  return DenseCurve([c["kodak"]["bpp"] for c in cards], [c["kodak"]["psnr-rgb"] for c in cards],
                    name or (cards[0]["family"] if cards else ""))


def delta_psnr_at_bpp(curve: DenseCurve, bpp: float, psnr: float) -> Optional[float]:
  """ΔPSNR (dB) of an operating point against `curve` at the same rate: negative = a loss.

  Args:
    curve: the reference curve.
    bpp: the operating point's rate.
    psnr: its PSNR in dB.

  Returns:
    psnr − curve(bpp), or None when bpp lies outside the curve.
  """
  reference = curve.psnr_at(bpp)
  return None if reference is None else float(psnr - reference)


def delta_psnr_against_control(curve: DenseCurve, bpp: float, psnr: float,
                               control_bpp: float, control_psnr: float) -> Optional[float]:
  """ΔPSNR (dB) of an operating point against a dense control at a nearby rate.

  The control is moved to `bpp` along the dense curve's local slope: its PSNR at bpp is
  control_psnr + curve(bpp) − curve(control_bpp). So the training both had in common (the
  same warm start and steps) cancels, and the rate difference is accounted for.

  Args:
    curve: the dense curve whose slope moves the control.
    bpp: the operating point's rate.
    psnr: its PSNR in dB.
    control_bpp: the control's rate.
    control_psnr: the control's PSNR in dB.

  Returns:
    psnr minus the moved control, or None when either rate lies outside the curve.
  """
  here, there = curve.psnr_at(bpp), curve.psnr_at(control_bpp)
  if here is None or there is None:
    return None
  return float(psnr - (control_psnr + here - there))


def attach_controls(models: List[Dict], curve: DenseCurve) -> None:
  """Pairs every sparse model with its dense control, in place.

  A sparse model (kind "sparse") gets the first control (kind "control") of the same λ
  and objective (default "beta"): its label as "control", and ΔPSNR against it
  (delta_psnr_against_control) as "delta_psnr_control". Models without a control are
  left as they are.

  Args:
    models: rows with "kind", "lmbda", "label", "bpp", "psnr" (and optionally
      "objective"); the sparse ones are updated.
    curve: the dense curve that moves each control to its sparse model's rate.
  """
  for entry in models:
    if entry.get("kind") != "sparse":
      continue
    controls = [c for c in models if c.get("kind") == "control"
                and c["lmbda"] == entry["lmbda"]
                and c.get("objective", "beta") == entry.get("objective", "beta")]
    if controls:
      entry["control"] = controls[0]["label"]
      entry["delta_psnr_control"] = delta_psnr_against_control(
          curve, entry["bpp"], entry["psnr"], controls[0]["bpp"], controls[0]["psnr"])


def tradeoff_panel(bpp: float, zoo: DenseCurve, points: List[Dict],
                   references: Iterable[dict] = ()) -> Dict:
  """The data of one panel of the green trade-off plot, at one rate.

  Args:
    bpp: the panel's rate (e.g. a dense zoo model's Kodak bpp).
    zoo: the dense zoo curve; every ΔPSNR is against it at equal rate.
    points: models near that rate, {"label", "bpp", "psnr", "encoder_macs"} each
      (encoder_macs: MACs per pixel of the encoder the model runs, the reduced one if sparse).
    references: results dicts (tfcae.evaluation.results layout) of other codecs, each
      plotted at its curve's PSNR at `bpp`; those named in REFERENCE_ENCODERS get that
      encoder cost, the others (classical codecs) a horizontal line.

  Returns:
    {"bpp", "points": [{"label", "encoder_kmacs", "delta_psnr", "bpp", "kind"}],
    "lines": [{"label", "delta_psnr"}]}; points and references outside a curve are left
    out.

  Raises:
    ValueError: `bpp` lies outside the dense curve.
  """
  out = {"bpp": float(bpp), "points": [], "lines": []}
  base = zoo.psnr_at(bpp)
  if base is None:
    raise ValueError(f"{bpp:.3f} bpp lies outside the dense curve "
                     f"({zoo.bpp[0]:.3f}-{zoo.bpp[-1]:.3f} bpp)")
  for p in points:
    delta = delta_psnr_at_bpp(zoo, p["bpp"], p["psnr"])
    if delta is not None:
      out["points"].append({"label": p["label"], "encoder_kmacs": p["encoder_macs"] / 1e3,
                            "delta_psnr": delta, "bpp": p["bpp"],
                            "kind": p.get("kind", "sparse")})
  for results in references:
    r = results["results"]
    value = value_at_rate(r["bpp"], r["psnr-rgb"], bpp, "linear")
    if np.isnan(value):
      continue
    name = results.get("name", "?")
    if name in REFERENCE_ENCODERS:
      out["points"].append({"label": name, "encoder_kmacs": REFERENCE_ENCODERS[name] / 1e3,
                            "delta_psnr": float(value - base), "bpp": float(bpp),
                            "kind": "reference"})
    else:
      out["lines"].append({"label": name, "delta_psnr": float(value - base)})
  return out


def panels_of_table(table: dict, references: Iterable[dict] = ()) -> List[Dict]:
  """The green trade-off's panels from a sparse Table I (bench/sparse_table1.py's JSON):
  one per dense warm start, at its Kodak rate, with the dense model itself, its dense
  control and every sparse model trained from it.

  Args:
    table: {"reference": {"name", "points": [{"label", "bpp", "psnr", "maccs_per_pixel"}]},
      "models": [{"label", "kind", "init_from", "bpp", "psnr", "maccs_per_pixel_reduced"}]}.
    references: results dicts of other codecs (see tradeoff_panel).

  Returns:
    tradeoff_panel's dicts, lowest rate first, each with the dense model's "name".
  """
  dense = table["reference"]["points"]
  zoo = DenseCurve([p["bpp"] for p in dense], [p["psnr"] for p in dense],
                   table["reference"]["name"])
  references = list(references)
  panels = []
  for point in sorted(dense, key=lambda p: p["bpp"]):
    spec = "zoo:" + point["label"]
    models = [m for m in table["models"] if m.get("init_from") == spec]
    if not models:
      continue
    points = [{"label": point["label"], "bpp": point["bpp"], "psnr": point["psnr"],
               "encoder_macs": point["maccs_per_pixel"], "kind": "dense"}]
    points += [{"label": m["label"], "bpp": m["bpp"], "psnr": m["psnr"],
                "encoder_macs": m["maccs_per_pixel_reduced"], "kind": m.get("kind", "sparse")}
               for m in models]
    panel = tradeoff_panel(point["bpp"], zoo, points, references)
    panels.append(dict(panel, name=point["label"]))
  return panels


def fmt(value: Optional[float], spec: str, missing: str = "–") -> str:
  """A table cell.

  Args:
    value: the number, or None.
    spec: its format spec (e.g. "+.2f").
    missing: the cell for None.

  Returns:
    `value` formatted with `spec`, or `missing` for None.
  """
  return missing if value is None else format(value, spec)


def table1_markdown(results: dict) -> str:
  """Table I at zoo scale as markdown.

  Args:
    results: bench/sparse_table1.py's JSON: "models" rows of accounting, Kodak RD,
      ΔPSNRs and latencies; "reference" the dense curve.

  Returns:
    One table per λ (largest first), then the paper's figures and the dense curve's
    points, as markdown ending in a newline.
  """
  lines = []
  for rate in sorted({r["lmbda"] for r in results["models"]}, reverse=True):
    rows = [r for r in results["models"] if r["lmbda"] == rate]
    lines += ["", f"λ = {rate}:", "",
              "| model | S | enc. kMAC/px | MAC red. | weights red. (sparse / reduced) | "
              "peak act. red. | bpp | PSNR (dB) | MS-SSIM | ΔPSNR @ bpp vs zoo / vs control "
              "(dB) | rel. loss vs warm start (dB) | TF 1t ms dense → reduced | "
              "TFLite 1t |", "|" + "---|" * 13]
    for r in rows:
      lat = {l["threads"]: l for l in r.get("latency", [])}

      def pair(kind, threads=1):
        l = lat.get(threads)
        if not l or f"{kind}_dense_s" not in l:
          return "–"
        return f"{1e3 * l[f'{kind}_dense_s']:.0f} → {1e3 * l[f'{kind}_reduced_s']:.0f}"
      act = 1 - (r["peak_activation_bytes_per_pixel_reduced"]
                 / r["peak_activation_bytes_per_pixel"])
      lines.append(
          f"| {r['label']} | {r['S']:.1%} | {r['maccs_per_pixel_reduced'] / 1e3:.2f} | "
          f"{r['macc_reduction']:.1%} | {r['memory_reduction_sparse']:.1%} / "
          f"{r['memory_reduction_reduced']:.1%} | {act:.1%} | {r['bpp']:.3f} | "
          f"{r['psnr']:.2f} | {r['ms_ssim']:.4f} | {fmt(r.get('delta_psnr_zoo'), '+.2f')} / "
          f"{fmt(r.get('delta_psnr_control'), '+.2f')} | "
          f"{fmt(r.get('relative_loss_db'), '+.2f')} | {pair('tf')} | {pair('tflite')} |")
  lines += ["", "Paper (Gille et al., Table I, encoder only):", "",
            "| method | S | MAC red. | mem. red. | rel. loss (dB) |", "|---|---|---|---|---|"]
  lines += [f"| {p['method']} | {p['S']:.0%} | {p['macc_reduction']:.0%} | "
            f"{p['memory_reduction']:.0%} | {p['relative_loss_db']} |" for p in GILLE_TABLE_I]
  lines += ["", "Dense curve (" + results["reference"]["name"] + "): " + ", ".join(
      f"{p['label']} {p['bpp']:.3f} bpp / {p['psnr']:.2f} dB"
      for p in results["reference"]["points"])]
  return "\n".join(lines) + "\n"
