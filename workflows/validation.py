"""Input checks that run inside workflows, before any activity: pure and deterministic.

Tightening a rule here changes what a replayed run does (it may now refuse at once), so a
change needs `workflow.patched` like any other workflow change.
"""

from __future__ import annotations

import re

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.cloud.vm import CreateVmInput, create_vm_input_problems
    from activities.contracts import OnboardNodeInput

# A payload version as it appears in an annotation value and a directory name.
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,62}$")


def vm_input(inp: OnboardNodeInput) -> CreateVmInput:
    return CreateVmInput(
        pool=inp.pool,
        node_name=inp.node_name,
        platform=inp.platform,
        aws=inp.aws,
        azure=inp.azure,
        byoh=inp.byoh,
        private_key_secret=inp.private_key_secret,
    )


def onboard_input_problems(inp: OnboardNodeInput) -> list[str]:
    """Everything wrong with an onboarding's input, each saying what to fix."""
    problems = create_vm_input_problems(vm_input(inp))
    if inp.version and not _VERSION.match(inp.version):
        problems.append(
            f"version {inp.version!r} is not a payload version (letters, digits, '.', '_', "
            "'+', '-'; at most 63; e.g. 1.1.0)"
        )
    return problems
