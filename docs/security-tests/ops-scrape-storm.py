"""Scrape storm against a running cerebral process: N concurrent GETs of
/metrics, with /healthz probed meanwhile; prints wall time, statuses, the
server's SQL statement delta and its peak RSS growth (VmHWM - VmRSS before)."""
import sys, time, threading, urllib.request, urllib.error, re

pid, scrape_url, stmt_url, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
health = re.sub(r"/metrics$", "/healthz", sys.argv[5]) if len(sys.argv) > 5 else None

def status_kb(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])

def statements():
    body = urllib.request.urlopen(stmt_url, timeout=60).read().decode()
    m = re.search(r"^cerebral_db_statements_total (\S+)$", body, re.M)
    return float(m.group(1))

def get(url):
    try:
        r = urllib.request.urlopen(url, timeout=120); r.read(); return r.status
    except urllib.error.HTTPError as e:
        return e.code

s0 = statements()
rss0 = status_kb("VmRSS"); hwm0 = status_kb("VmHWM")
statuses = []; lock = threading.Lock()
slowest = [0.0]; stop = [False]
def probe():
    while not stop[0]:
        t = time.time(); get(health); slowest[0] = max(slowest[0], time.time() - t); time.sleep(0.05)
def one():
    st = get(scrape_url)
    with lock: statuses.append(st)
threads = [threading.Thread(target=one) for _ in range(n)]
p = threading.Thread(target=probe) if health else None
t0 = time.time()
if p: p.start()
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - t0
stop[0] = True
if p: p.join()
s1 = statements()
hwm1 = status_kb("VmHWM")
print(f"scrapes={n} statuses={sorted(set(statuses))} wall={wall:.2f}s statements_delta={s1 - s0:.0f} "
      f"peak_rss_growth={(max(hwm1, hwm0) - rss0) / 1024:.1f}MiB slowest_healthz={slowest[0]*1000:.0f}ms")
