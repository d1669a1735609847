"""medviz: python app.py [--model NAME_OR_PATH] [--models-dir FOLDER] [--host 127.0.0.1] [--port 7860]
[--auth-file FILE]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading

from medviz.models import ModelLoadError, check_pipeline_folder, resolve
from medviz.ui.session import ModelRegistry


def private_environment() -> None:
    """Privacy first: no analytics, offline, uploads/outputs in a private temp folder (not a shared cache).

    Called by ``main`` before gradio is imported (it reads these at import), not at module import, so
    that importing this module (tests) never moves a running server's temp folder.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="medviz-gradio-"))


def read_auth_file(path: str) -> list[tuple[str, str]]:
    """'user:password' per line (blank lines and # comments ignored)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if ":" not in line:
                raise SystemExit(f"{path}, line {number}: expected 'user:password'")
            user, password = line.split(":", 1)
            pairs.append((user, password))
    if not pairs:
        raise SystemExit(f"{path}: no 'user:password' line")
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="medviz: look inside medical text-to-image diffusion models")
    parser.add_argument("--model", default="cxr-phantom", help="bundled model name or a local model path")
    parser.add_argument("--models-dir", help="a folder of your own models (diffusers folders): the model box offers "
                                             "them, and takes nothing else beside the bundled models")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MEDVIZ_PORT", 7860)))
    parser.add_argument("--auth-file", help="enable basic auth with 'user:password' lines from this file")
    parser.add_argument("--device", choices=["cuda", "mps", "cpu"], help="default: CUDA fp16, else MPS, else CPU")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    private_environment()
    try:  # a missing or malformed --model stops here with one message (cheap checks, no weights loaded)
        path = resolve(args.model)
        if path.is_dir():
            check_pipeline_folder(path)
    except ModelLoadError as error:
        raise SystemExit(f"medviz: {error}") from None
    if args.models_dir and not os.path.isdir(args.models_dir):
        raise SystemExit(f"medviz: --models-dir {args.models_dir}: not a folder")
    registry = ModelRegistry(args.model, device=args.device, models_dir=args.models_dir)
    # Load the model while gradio is imported and the page is built and served: the page is usable
    # sooner, and the first model event waits for this load (the registry's lock), never loads twice.
    threading.Thread(target=registry.warm, name="medviz-model-load", daemon=True).start()
    from medviz.ui.layout import build_demo, serve  # after private_environment: gradio reads it at import

    serve(build_demo(registry), args.host, args.port, auth=read_auth_file(args.auth_file) if args.auth_file else None)


if __name__ == "__main__":
    main(sys.argv[1:])
