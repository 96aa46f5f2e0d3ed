#!/usr/bin/env python3
"""tools/bench/chaos/events.py: passes fusebox's log through and adds, after each breaker
transition, the line chaos.sh shows in its events column: "chaos-event EPOCH_MS open|half_open|
closed". Reads stdin (fusebox's stderr), writes stdout."""

import re
import sys
from datetime import datetime, timezone

TRANSITION = re.compile(r"^(\S+Z) \S+\s+\[[^]]*\] breaker \S+: \S+ -> (\S+):")

for line in sys.stdin:
    sys.stdout.write(line)
    m = TRANSITION.match(line)
    if m:
        at = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        sys.stdout.write(f"chaos-event {at.timestamp() * 1000:.1f} {m.group(2)}\n")
    sys.stdout.flush()
