# @title Set-up for Colab (does nothing where sparsity_lib is installed)
# Every chapter's first code cell is this file (scripts/colab_setup.py; scripts/sync_setup_cell.py copies it,
# tests/test_colab_setup.py runs it). Where sparsity_lib cannot be imported, it imports the checkout this
# notebook sits in, or else (a fresh Colab runtime) clones the package and its stored runs (results/) from
# the repository and installs them, so the chapter loads the stored runs instead of retraining them.
import importlib.util
import subprocess
import sys
from pathlib import Path

REPOSITORY = "https://github.com/implicit-sparsity-book/implicit-sparsity-book"  # must name the real repository
if importlib.util.find_spec("sparsity_lib") is None:
    checkout = next((folder for folder in [Path.cwd(), *Path.cwd().parents]
                     if (folder / "sparsity_lib" / "__init__.py").is_file()), None)
    if checkout is None:
        checkout = Path("implicit-sparsity-book").resolve()
        if not checkout.is_dir():  # a shallow clone of only the package and the stored runs (~50 MB)
            subprocess.run(["git", "clone", "--quiet", "--depth=1", "--filter=blob:none", "--sparse", REPOSITORY,
                            str(checkout)], check=True)
            subprocess.run(["git", "-C", str(checkout), "sparse-checkout", "set", "sparsity_lib", "results"],
                           check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(checkout)], check=True)
    sys.path.insert(0, str(checkout))  # this kernel imports it now; the store is its results/
    print(f"sparsity_lib from {checkout}")
