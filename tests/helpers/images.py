from pathlib import Path


def write_image(path: Path, size=(64, 64), colour="red") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path
