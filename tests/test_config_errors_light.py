"""Every configuration error answers without importing torch: ``fedssl run`` with a bad value
exits 2 naming the key and what is valid, with no traceback, and the heavy libraries were
never imported (how fast that is, is measured in benchmarks/validation_time.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "lightly", "torchvision", "torchaudio", "sklearn", "ray", "pandas", "flwr")

# What `fedssl run ARGS` in a fresh interpreter printed, and which of HEAVY it had imported
# (argv: the comma-separated HEAVY, then ARGS).
_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    import fedssl.cli
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = fedssl.cli.main(["run", *sys.argv[2:]])
    print(json.dumps({"rc": rc, "stderr": err.getvalue(),
                      "heavy": [m for m in sys.argv[1].split(",") if m in sys.modules]}))
""")


def fedssl_run(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("args", "says"), [
    (["lr=banana"], ["lr='banana'", "expected float"]),
    (["model=nope"], ["model='nope' is not valid; choose one of:", "small-cnn", "resnet18",
                      "repopt-vgg-b1"]),
    (["task=audio-ssl", "dataset=cifar10"],
     ["task='audio-ssl' does not fit", "dataset='cifar10' is image",
      "needs one of spoken-digits", "trained by task=image-classification or image-ssl"]),
    (["strategy=fedrepopt"],
     ["strategy=fedrepopt", "task='image-ssl' (needs image-classification)",
      "needs one of repopt-vgg-b1", "repopt-scales=''"]),
    (["ssl-method=clip-order"], ["ssl-method='clip-order' is predictive SSL for audio",
                                 "needs one of byol, barlowtwins, simclr, simsiam"]),
    (["task=image-classification", "repopt-mode=bogus"],
     ["repopt-mode='bogus' (choose one of rep, csla, hs, target)"]),
    (["partitioner=group"], ["partitioner='group'", "use iid, dirichlet"]),
    (["server-optimizer=fedadam"], ["server-optimizer='fedadam' applies to the strategies "
                                    "ldawa, fedvssl"]),
    (["strategy=ldawa", "ldawa-weighting=median"], ["ldawa-weighting='median' is not valid; "
                                                    "choose one of: uniform, num-examples"]),
    (["dataset=cifar10", "data-dir=/nonexistent/cifar"],
     ["data-dir='/nonexistent/cifar'", "cifar-10-batches-py"]),
    (["dataset=imagefolder", "data-dir=/nonexistent/tree"],
     ["data-dir='/nonexistent/tree'", "is not a directory"]),
    (["task=audio-ssl", "dataset=esc50", "model=van-lska-tiny", "data-dir=/nonexistent/esc"],
     ["data-dir='/nonexistent/esc'", "meta/esc50.csv"]),
])
def test_a_config_error_names_the_key_and_imports_nothing_heavy(args, says):
    seen = fedssl_run(*args)
    assert seen["rc"] == 2
    assert seen["stderr"].startswith("fedssl: invalid configuration: ")
    assert "Traceback" not in seen["stderr"]
    for text in says:
        assert text in seen["stderr"]
    # An audio layout check reads its metadata tables with pandas; nothing needs torch.
    allowed = {"pandas"} if "dataset=esc50" in args else set()
    assert set(seen["heavy"]) <= allowed, seen["heavy"]


def test_the_modules_that_check_a_config_import_nothing_heavy():
    code = textwrap.dedent(f"""
        import sys
        import fedssl.catalogue, fedssl.compose, fedssl.launch.overrides, fedssl.datasets.checks
        print([m for m in {HEAVY!r} if m in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
