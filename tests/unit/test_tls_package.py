"""labctl.tls stays pure: bytes in, facts out, with nothing of Docker or of the rest of the lab."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_tls_package_imports_no_docker_and_no_other_part_of_labctl():
    program = ("import json, sys\n"
               "import labctl.tls.analyzer, labctl.tls.constants, labctl.tls.decrypt, labctl.tls.records, "
               "labctl.tls.stolenkey\n"
               "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    modules = json.loads(out.stdout)
    assert not [m for m in modules if m == "docker" or m.startswith("docker.")]
    ours = {m for m in modules if m == "labctl" or m.startswith("labctl.")}
    # files holds signals while it writes (labctl.interrupts: the standard library only).
    assert ours - {m for m in ours if m.startswith("labctl.tls")} == {"labctl", "labctl.errors", "labctl.files",
                                                                     "labctl.interrupts"}
