"""Pillow baseline for the tcav-preprocess benchmark (benches/pipeline.rs).

Runs the same per-image steps, in one Python process, on the JPEGs that
`cargo bench -p tcav-preprocess` leaves in target/tmp/tcav-preprocess-bench:

    decode -> EXIF orientation -> 8-bit RGB -> hash of the decoded pixels
    -> centre square crop -> Lanczos resize to 256 x 256 -> luma standard
    deviation (the near-uniform check) -> 64-bit gradient hash (dHash: luma
    resized to 9 x 8 with Lanczos, one bit per horizontal neighbour pair)

and prints images per second. The files are read into memory first, as the
Rust benchmark does, so disk speed does not count.

Usage (Pillow in a throwaway virtual environment, never in the repository):

    python3 -m venv /tmp/pillow-venv && /tmp/pillow-venv/bin/pip install Pillow
    /tmp/pillow-venv/bin/python crates/tcav-preprocess/benches/pillow_baseline.py \
        target/tmp/tcav-preprocess-bench
"""

import hashlib
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps, ImageStat

SIZE = 256


def preprocess(data: bytes) -> tuple[str, float, int]:
    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    image = image.convert("RGB")
    pixel_hash = hashlib.blake2b(image.tobytes(), digest_size=32).hexdigest()
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    luma = image.convert("L")
    luma_std = ImageStat.Stat(luma).stddev[0]
    small = luma.resize((9, 8), Image.Resampling.LANCZOS).tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (small[row * 9 + col] < small[row * 9 + col + 1])
    return pixel_hash, luma_std, bits


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/tcav-preprocess-bench")
    files = sorted(folder.glob("*.jpg"))
    if not files:
        sys.exit(f"no JPEGs in {folder}: run `cargo bench -p tcav-preprocess` first")
    images = [f.read_bytes() for f in files]
    for data in images[:10]:  # warm-up
        preprocess(data)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for data in images:
            preprocess(data)
        rates.append(len(images) / (time.perf_counter() - start))
    print(
        f"Pillow {Image.__version__}, one process: {len(images)} images, "
        f"median {statistics.median(rates):.1f} images/s (best {max(rates):.1f}, worst {min(rates):.1f})"
    )


if __name__ == "__main__":
    main()
