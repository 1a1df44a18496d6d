# Shared by bench/run and bench/threads (sourced): otpd started with the
# same settings in both, so their figures describe the same server.

# Waits until something listens on 127.0.0.1:PORT.
wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

# start_otpd BINARY PORT DIR: otpd with a database and its log in DIR,
# per-address and per-IP limits off, JSON logs; sets otpd_pid. The log
# mailer prints every mail to stdout: /dev/null here.
start_otpd() {
  env -i PATH="$PATH" \
    OTPD_LISTEN="127.0.0.1:$2" OTPD_STORE="sqlite://$3/otpd.db" \
    OTPD_SECRET="$("$1" gen-secret)" \
    OTPD_IP_REQUESTS_PER_MINUTE=0 OTPD_RESEND_COOLDOWN=0 OTPD_MAX_CODES_PER_HOUR=0 \
    OTPD_LOG_FORMAT=json \
    "$1" serve >/dev/null 2>"$3/otpd.log" &
  otpd_pid=$!
}
