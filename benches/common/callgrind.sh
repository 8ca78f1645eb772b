# Sourced by the callgrind scripts (benches/observe_cost.sh, benches/instr_vs_tokio.sh):
# valgrind, installed if missing, and `count CMD...`, the instructions CMD executes.
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
        awk '/refs:/ { gsub(",", "", $NF); print $NF }'
}
