# Thin wrapper over CMake: the README's two commands.
#   make run   install what is missing, build, start the daemon on examples/quickstart.json
#   make test  install what is missing, build with -Werror + ASan/UBSan, run every test (ctest)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
TEST_BUILD ?= build-test

.PHONY: run test build deps test-deps clean

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

# The test suite needs libcheck, which only test-deps installs: make run
# builds the daemon and plugins alone.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSB_TESTS=OFF
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@mkdir -p data
	@[ -s data/demo.secret ] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/demo.secret; \
	  chmod 600 data/demo.secret; echo "made data/demo.secret (the demo channel's signing secret)"; }
	@[ -s data/secret.key ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/secret.key; \
	  chmod 600 data/secret.key; echo "made data/secret.key (seals what the API stores: channel credentials, webhook secrets)"; }
	$(BUILD)/switchboard run -c examples/quickstart.json

test: test-deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSB_SANITIZE=ON -DSB_WERROR=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
