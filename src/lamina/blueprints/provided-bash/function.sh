# The handler: receives the event JSON as $1, prints the response JSON.
handler() {
  echo "got $1" >&2
  printf '{"echo": %s}' "$1"
}
