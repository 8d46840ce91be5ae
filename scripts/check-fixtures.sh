#!/usr/bin/env bash
# Runs every generator of a committed test fixture and fails when the committed files differ
# from what it makes now (scripts/check_fixtures.py has the list and the comparisons):
#   scripts/make_reference.py, make_dicom_reference.py, make_occlusion_reference.py -> tests/fixtures/*.json
#   scripts/make_resize_fixtures.py -> tests/fixtures/resize/;  fuzz/make_seeds.py -> fuzz/seeds/
# In .cache/fixtures-venv, pinned by tests/fixtures/requirements.txt under scripts/int8/requirements.txt.
# Needs scripts/setup.sh --test-data first (the model, the MRI, colour and DICOM files).
#   --write   rewrite the committed fixtures instead (then commit them with the generator's change)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
ensure_venv .cache/fixtures-venv tests/fixtures/requirements.txt scripts/int8/requirements.txt
exec .cache/fixtures-venv/bin/python scripts/check_fixtures.py "$@"
