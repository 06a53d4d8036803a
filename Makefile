# The README's two commands. Everything they need is installed by the scripts in hack/.
.PHONY: demo test lint

# The main job: the whole pipeline on embedded defaults (needs only Go).
demo:
	go run ./examples/pipeline

# Installs the test bed (Debian packages, control plane binaries) and runs every test.
test:
	./hack/test.sh

lint:
	./hack/lint.sh
