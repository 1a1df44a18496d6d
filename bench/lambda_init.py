"""Init time (cold start) of the otpd Lambda functions, measured locally.

Plays the Lambda Runtime API: starts a function's `bootstrap` with
AWS_LAMBDA_RUNTIME_API pointing here and measures the time from the start of
the process to its first `GET /runtime/invocation/next`, which is when the
function has finished its init (configuration, AWS clients, code key) and
asks for work. That is the part of a cold start the function controls.

    python3 bench/lambda_init.py target/lambda-native [RUNS]
"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

FUNCTIONS = ["generate-otp", "verify-otp", "send-otp-email"]


class Runtime(http.server.BaseHTTPRequestHandler):
    ready = threading.Event()

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            Runtime.ready.set()
            time.sleep(5)  # no invocation; the process is killed meanwhile
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def measure(binary, port):
    Runtime.ready.clear()
    env = {
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(binary),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "OTPD_SECRET": "ab" * 32,
        "OTPD_TABLE": "EmailVerification",
        "OTPD_MAIL_FROM": "otpd <no-reply@example.com>",
    }
    start = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = Runtime.ready.wait(10)
    elapsed = time.perf_counter() - start
    process.kill()
    process.wait()
    if not ok:
        raise SystemExit(f"{binary} never asked for an invocation")
    return elapsed * 1000


def main():
    folder = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print("| function | init, median of %d | min | max |" % runs)
    print("| --- | ---: | ---: | ---: |")
    for name in FUNCTIONS:
        binary = os.path.join(folder, name)
        times = [measure(binary, port) for _ in range(runs)]
        print(f"| {name} | {statistics.median(times):.1f} ms | {min(times):.1f} ms | {max(times):.1f} ms |")
    server.shutdown()


if __name__ == "__main__":
    main()
