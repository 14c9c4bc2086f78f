"""Checks an Autobahn report (index.json written by kosoku) for tests/autobahn/run.

Every case must be OK. A case may instead be NON-STRICT or INFORMATIONAL
only when it is listed in ALLOWED below with the reason, and the same
reason is written in SECURITY.md ("Autobahn"). A case that is FAILED,
UNIMPLEMENTED, WRONG CODE or missing fails the check, and so does an
allowed case whose result changed (the list must stay true).

Usage: python3 check.py REPORT_DIR EXPECTED_MIN_CASES
"""

import json
import sys
from collections import Counter
from pathlib import Path

# Case id -> (the result it has, why). Kept in step with SECURITY.md.
ALLOWED = {
    # A frame's payload is checked as UTF-8 once the whole frame has arrived
    # (a fragmented message is checked fragment by fragment, so 6.4.1 and
    # 6.4.2 fail fast), so invalid bytes at the start of a frame whose rest
    # is still on its way are refused when the frame ends: 1007 all the same,
    # one read later. RFC 6455 §8.1 allows either.
    "6.4.3": ("NON-STRICT", "a frame's UTF-8 is checked once the frame is whole"),
    "6.4.4": ("NON-STRICT", "a frame's UTF-8 is checked once the frame is whole"),
    # Autobahn leaves the outcome to the implementation: the echo sends the
    # 256 KiB message back, then the small one, then answers the close.
    "7.1.6": ("INFORMATIONAL", "outcome left to the implementation; everything is echoed before the close"),
    # Close codes 5000 and 65536 are undefined by RFC 6455; the endpoint
    # answers with 1002 (protocol error), as for any code it does not accept.
    "7.13.1": ("INFORMATIONAL", "close code 5000 is undefined; answered with 1002"),
    "7.13.2": ("INFORMATIONAL", "close code 65536 is undefined; answered with 1002"),
}
# 13.3 and 13.5 offer permessage-deflate only with server_max_window_bits=9.
# The gateway deflates each message once for every session, with one window
# size (15 bits), so it declines such an offer (RFC 7692 §7.1.2.1 lets it)
# and the connection runs uncompressed, which Autobahn reports as
# UNIMPLEMENTED. 13.7 offers the same first and then others: it is OK.
for _group in ("13.3", "13.5"):
    for _size in range(1, 19):
        ALLOWED[f"{_group}.{_size}"] = (
            "UNIMPLEMENTED",
            "the offer asks for a 9-bit server window; declined, the connection runs uncompressed",
        )

GOOD_CLOSE = {"OK", "INFORMATIONAL"}


def main() -> int:
    report_dir = Path(sys.argv[1])
    expected_min = int(sys.argv[2])
    index = json.loads((report_dir / "index.json").read_text())
    if len(index) != 1:
        print(f"autobahn: expected one agent in the report, found {sorted(index)}")
        return 1
    (agent, cases), = index.items()
    problems = []
    counts = Counter()
    for case_id, entry in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        behavior = entry["behavior"]
        close = entry["behaviorClose"]
        counts[behavior] += 1
        if case_id in ALLOWED:
            allowed, why = ALLOWED[case_id]
            if behavior not in ("OK", allowed):
                problems.append(f"{case_id}: {behavior} (allowed: {allowed}, {why})")
            elif behavior != allowed:
                problems.append(f"{case_id}: now {behavior}; remove it from ALLOWED and SECURITY.md")
        elif behavior != "OK":
            problems.append(f"{case_id}: {behavior} (close: {close}, code {entry['remoteCloseCode']})")
        if close not in GOOD_CLOSE:
            problems.append(f"{case_id}: close behaviour {close}")
    summary = ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
    print(f"autobahn: {len(cases)} cases against {agent}: {summary}")
    if len(cases) < expected_min:
        problems.append(f"only {len(cases)} cases ran; expected at least {expected_min}")
    for problem in problems:
        print(f"autobahn: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
