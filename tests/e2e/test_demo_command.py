"""The README's main command (`make demo` = `python -m sandbox.soar demo`) end to end, as a user runs it."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_demo_sends_collects_a_reply_pages_with_a_call_acknowledged_by_pressing_1_and_prints_the_log():
    run = subprocess.run([sys.executable, "-m", "sandbox.soar", "demo"], cwd=ROOT, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for step in range(1, 7):
        assert f"[{step}] " in out
    assert "action status: Sent 2 of 2" in out
    log = out[out.index("\nSMS Activity Log\n") + 1:out.index("\nNotes")]
    rows = [line for line in log.splitlines()[3:] if line.strip()]
    assert len(rows) == 6, log        # 3 sent (one invalid), 1 reply, the page's text, the page's call
    assert sum("outbound-api" in r for r in rows) == 4 and sum("Failed" in r for r in rows) == 1
    assert any("received" in r and "ACK, on it" in r for r in rows)
    (call_row,) = [r for r in rows if "outbound-call" in r]
    assert "Call acknowledged" in call_row and "+14155552345" in call_row and "pressed 1" in call_row
    assert "action status: Escalating to tier 2: no acknowledgement within 3s" in out
    assert "action status: Tier 2: paged 1 person (1 by a call)" in out
    assert "result: success=True, acknowledged by +14155552345 in tier 2 by pressing 1 on the call" in out
    notes = [line for line in out[out.index("\nNotes"):].splitlines()
             if line.strip()[:2].rstrip(".").isdigit()]
    assert len(notes) == 4 and "Twilio page acknowledged" in notes[-1]
    assert "by voice (pressed 1 on the call)" in notes[-1]
    assert "emu-key-secret" not in "\n".join(rows + notes)
