"""Published rate-distortion points on Kodak: where the field stands, shown beside (never mixed into) our curves.

The numbers are those the C3 authors collected in google-deepmind/c3_neural_compression, `baselines/kodak.py`
(each curve's own source is in `source`): mean bpp and mean PSNR over the 24 Kodak images at 768 x 512, RGB.
They are measured on Kodak by their authors, not here, on other images than fitbench's presets: a reference for
orientation, not a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

COLUMNS = ["method", "dataset", "bpp", "psnr", "source"]
COLLECTION = "google-deepmind/c3_neural_compression baselines/kodak.py"


@dataclass(frozen=True)
class PublishedCurve:
    method: str
    reference: str  # the paper
    origin: str  # where the C3 collection took the numbers from
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]


CURVES = (
    PublishedCurve(
        "COIN", "Dupont et al. 2021, arXiv:2103.03123", "EmilienDupont/coin results.json",
        (0.0368, 0.07361, 0.1604, 0.3074, 0.6109, 1.209),
        (22.408, 23.205, 24.6410833, 26.412125, 28.408, 30.644)),
    PublishedCurve(
        "COIN++", "Dupont et al. 2022, arXiv:2201.12904", "EmilienDupont/coinpp results/kodak/coinpp.json",
        (0.06656413525342941, 0.1324574202299118, 0.2659042477607727, 0.3982515782117843, 0.5365909337997437),
        (23.68178367614746, 24.926698684692383, 26.142541885375977, 27.031984329223633, 27.798105239868164)),
    PublishedCurve(
        "Strümpler et al.", "Strümpler et al. 2022, arXiv:2112.04267", "obtained from the paper's authors",
        (0.08315870496961805, 0.1546198527018229, 0.24893612331814235, 0.7844628228081597),
        (25.56004644305473, 27.019205940785646, 28.28015802285809, 32.13873826006784)),
    PublishedCurve(
        "C3", "Kim et al. 2024, arXiv:2312.02753", "the C3 authors' experiments",
        (0.09261394, 0.1339127, 0.15318637, 0.2025493, 0.23175092, 0.27606731, 0.35064952, 0.51440305,
         0.57850416, 0.72855291, 0.8066705, 0.91400582, 1.07998864, 1.40934119),
        (27.06491995, 28.45003923, 28.9589448, 30.03212317, 30.59409277, 31.33577712, 32.39495262, 34.36792223,
         35.0161012, 36.38384724, 37.03668944, 37.84491142, 38.98360984, 40.84745836)),
    PublishedCurve(
        "JPEG", "JPEG, Pillow 7.1.2", "InterDigitalInc/CompressAI results/image/kodak/jpeg.json",
        (0.22115325927734372, 0.32661437988281244, 0.42312622070312506, 0.5083855523003472, 0.5878660413953993,
         0.6601265801323783, 0.728946261935764, 0.786026848687066, 0.8497187296549479, 0.9060007731119791,
         0.9643800523546006, 1.0372119479709203, 1.1273964775933163, 1.23984612358941, 1.3688269721137154,
         1.5718070136176217, 1.8588163587782118, 2.350199381510416, 3.4013400607638893),
        (23.779894921045457, 26.57723034342358, 28.042246379237767, 29.04180914810682, 29.78473021842612,
         30.378313496658652, 30.903164761925012, 31.307827225129476, 31.70484530103775, 32.05865273799422,
         32.39929573599792, 32.789915599755076, 33.234742421489976, 33.792594320368266, 34.39429509119509,
         35.239001425077355, 36.32886455167303, 37.9121247026983, 40.556657112988766)),
    PublishedCurve(
        "BPG", "BPG b0.9.8, 4:4:4, x265", "InterDigitalInc/CompressAI results/image/kodak/bpg_444_x265_ycbcr.json",
        (0.06776767306857638, 0.1610234578450521, 0.35155402289496523, 0.6846966213650174, 1.1996654934353295,
         1.9297120836046002, 3.0578757392035594, 4.703142801920573),
        (26.19512806390954, 28.68154930675666, 31.5946565907943, 34.857473813062924, 38.259886899666974,
         41.47887283561703, 44.70311031066196, 47.63251604714922)),
)


def published_table() -> pd.DataFrame:
    """One row per published point: method, dataset, bpp, psnr, source (the layout of OUT/compression/published.csv)."""
    rows = [{"method": curve.method, "dataset": "kodak", "bpp": bpp, "psnr": psnr,
             "source": f"{curve.reference}; via {COLLECTION} ({curve.origin})"}
            for curve in CURVES for bpp, psnr in zip(curve.bpp, curve.psnr)]
    return pd.DataFrame(rows, columns=COLUMNS)
