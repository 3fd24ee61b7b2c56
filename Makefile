# erlang_python: build, test, demo.
#   make setup   install what a fresh Debian/Ubuntu machine lacks (ELIXIR=1: Elixir
#                too; UV=1: uv from PyPI, for ensure_venv's installer => uv)
#   make         build the NIF and the OTP application
#   make test    every test: cargo tests and the Common Test suites
#   make dep-check   fresh rebar3 and mix projects using this repository as a
#                dependency, built from nothing; then examples/elixir
#   make docs    the edoc HTML of the public modules (erlang/doc/index.html);
#                any edoc warning fails it
#   make check   static analysis: clippy (warnings are errors, every unsafe block
#                documented), rustfmt, xref, dialyzer
#   make demo    start the application and show calls, eval, exec, types, errors
#   make shell   an Erlang shell with the application started
#   make console the same, built with tokio-console support (make console-check tests it)
#   make bench   the benchmark table (make bench-write also updates docs/benchmarks.md;
#                make bench-async only the rows of casts, spawn_call and streams;
#                make bench-reach only those of refs, channels, thread callbacks)
#   make bench-flags the one-caller steadiness figures under several +sbwt/+swt settings
#   make stage-probe cycles per step of one call and of one echo (scripts/stage-probe)
#   make bench-isolation  process-isolated contexts next to in-process ones
#   make bench-cluster   py_cluster over 1, 2 and 3 nodes of this machine, next to
#                native Python processes; a remote call next to erpc
#   make python-3.13t   build a free-threaded CPython (also python-3.13)
# Pick the Python with PYTHON_CONFIG=/path/python3.X-config or PYTHON=/path/python3.
export PYTHON PYTHON_CONFIG PERF_BUILD ELIXIR UV

.PHONY: all build build-hooks setup check docs dep-check test stage-probe bench-reach bench-cluster bench-isolation bench-flags test-rust test-erlang demo shell console console-check bench bench-async bench-write clean python-3.13 python-3.13t

all: build

build:
	cd erlang && rebar3 compile

# The build the benchmark needs: with its floors (noop, direct_call).
build-hooks:
	cd erlang && EP_TEST_HOOKS=1 rebar3 compile

setup:
	bash scripts/setup

test: test-rust test-erlang

dep-check:
	scripts/dep-check

docs:
	cd erlang && rebar3 edoc > ../_build-edoc.log 2>&1 || { cat ../_build-edoc.log; exit 1; }
	@if grep -iE "warning|error" _build-edoc.log; then echo "make docs: edoc warnings above" >&2; rm -f _build-edoc.log; exit 1; fi
	@rm -f _build-edoc.log; echo "docs: erlang/doc/index.html"

check:
	bash -c '. scripts/python-env && cargo clippy --all-targets --features test-hooks -- -D warnings -D clippy::undocumented_unsafe_blocks'
	bash -c '. scripts/python-env && cargo clippy --lib --features test-hooks,stage-probe -- -D warnings -D clippy::undocumented_unsafe_blocks'
	cargo fmt --check
	cd erlang && rebar3 xref
	cd erlang && rebar3 dialyzer

test-rust:
	bash -c '. scripts/python-env && cargo test --quiet'

test-erlang:
	cd erlang && rebar3 ct

demo: build
	escript scripts/demo.escript

shell: build
	cd erlang && rebar3 shell --apps erlang_python

# A shell whose NIF serves tokio-console (127.0.0.1:6669; app env console_addr).
console:
	cd erlang && ERLANG_PYTHON_CONSOLE=1 rebar3 shell --apps erlang_python

# Build with the console, attach the real tokio-console client, check the actors show.
console-check:
	scripts/console-check

bench: build-hooks
	escript scripts/bench.escript

bench-async: build-hooks
	escript scripts/bench.escript async

bench-reach: build-hooks
	escript scripts/bench.escript reach

bench-flags: build-hooks
	scripts/vm-flags

stage-probe:
	scripts/stage-probe

bench-isolation: build-hooks
	escript scripts/bench.escript isolation

bench-cluster: build
	escript scripts/bench-cluster.escript

bench-write: build-hooks
	escript scripts/bench.escript write
	scripts/plot-throughput

# Build a CPython from Debian's sources (cached in ~/.cache/erlang_python), e.g.
#   make python-3.13t && PYTHON=$$(scripts/python-build 3.13t | tail -1) make test
python-3.13:
	scripts/python-build 3.13

python-3.13t:
	scripts/python-build 3.13t

clean:
	rm -rf target erlang/_build erlang/priv
