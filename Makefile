# catdog-study: `make help` lists the targets. Every target installs what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
SEEDS ?= 0,1,2
# One id per study setting (SEEDS, ARGS): it names the Hydra sweep, tags the runs and scopes
# the report, so a second `make study` resumes the first (finished jobs are skipped, one line
# each) and its review page covers both launches. ARGS=study.rerun=true trains everything again.
comma := ,
STUDY_ID ?= reference-seeds-$(subst $(comma),-,$(SEEDS))$(if $(ARGS),-$(shell printf '%s' '$(ARGS)' | sha1sum | cut -c1-8))

# Machines without internet: fall back to the local copies of the dataset and the
# ImageNet weights in ../shared when they exist and the caller has not chosen.
SHARED := $(abspath ../shared)
ifneq ($(wildcard $(SHARED)/data/cats_and_dogs_filtered.zip),)
export CATDOG_DATA_URL ?= file://$(SHARED)/data/cats_and_dogs_filtered.zip
endif
ifneq ($(wildcard $(SHARED)/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5),)
export CATDOG_BACKBONE_WEIGHTS ?= $(SHARED)/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install study report train tune ui server compare test test-unit test-full lint bench bench-cnn bench-views bench-head bench-search bench-onednn bench-table bench-replay clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (editable) with its pinned dependencies

study: $(STAMP) ## the reference study, 4 variants x SEEDS (0,1,2; SEEDS=0 for a quick one), then its report and decision
	@start=$$(date +%s); \
	$(BIN)/catdog-train --multirun experiment=reference model=transfer,cnn,preprocessed,augmented seed=$(SEEDS) \
		study.skip_finished=true study.live_report=true hydra.sweep.dir=$(CURDIR)/multirun/$(STUDY_ID) $(ARGS) && \
	echo "make study: $$(( $$(date +%s) - start )) s of training for seeds $(SEEDS)" && \
	$(BIN)/catdog report --experiment reference-study --sweep $(STUDY_ID)

report: $(STAMP) ## the review page of an experiment, into reports/NAME/; ARGS="--experiment NAME"
	$(BIN)/catdog report $(ARGS)

train: $(STAMP) ## one training run; pass Hydra overrides in ARGS="model=transfer seed=1"
	$(BIN)/catdog-train $(ARGS)

tune: $(STAMP) ## a Keras Tuner search; pass Hydra overrides in ARGS="model=transfer tuner=random"
	$(BIN)/catdog-tune $(ARGS)

compare: $(STAMP) ## the variant table in the terminal (mean ± sd, 95% intervals, p vs baseline); ARGS="--experiment NAME"
	$(BIN)/catdog compare $(ARGS)

ui: $(STAMP) ## the MLflow UI on 127.0.0.1:5000 for the project's store, or MLFLOW_TRACKING_URI's store
	@store=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns/mlflow.db}; \
	case "$$store" in http*) echo "MLFLOW_TRACKING_URI is a server already: $$store/#/experiments?workflowType=machine_learning"; exit 0;; esac; \
	echo "MLflow UI on $$store: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (runs view)"; \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec $(BIN)/mlflow server --backend-store-uri "$$store" \
		--host 127.0.0.1 --port 5000 --workers 1

# `make server`: the team's tracking server. Every setting can be overridden: HOST=0.0.0.0
# to share it, BACKEND_STORE_URI=postgresql://user@db/mlflow for a team database.
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 1
BACKEND_STORE_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
ARTIFACTS_DESTINATION ?= $(CURDIR)/mlruns/artifacts

AUTH ?=
AUTH_CONFIG := $(CURDIR)/mlruns/basic_auth.ini
# A server reachable beyond this machine without logins lets anyone read and change every
# run: refused unless AUTH=1, or ALLOW_UNAUTHENTICATED=1 for a network that is trusted.
ALLOW_UNAUTHENTICATED ?=
LOOPBACK := 127.0.0.1 localhost ::1
# MLflow's own protections, matched to HOST: the Host headers it answers (against DNS
# rebinding) and the web origins that may call it (CORS). Add a DNS name the team uses.
SERVER_NAMES := $(if $(filter $(HOST),$(LOOPBACK)),localhost 127.0.0.1,$(HOST) $(shell hostname) $(shell hostname -f 2>/dev/null) localhost 127.0.0.1)
empty :=
space := $(empty) $(empty)
ALLOWED_HOSTS ?= $(subst $(space),$(comma),$(sort $(SERVER_NAMES) $(addsuffix :$(PORT),$(SERVER_NAMES))))
CORS_ALLOWED_ORIGINS ?= $(subst $(space),$(comma),$(sort $(addprefix http://,$(addsuffix :$(PORT),$(SERVER_NAMES)))))

server: $(STAMP) ## MLflow tracking server with artifact proxying (HOST, PORT, WORKERS, BACKEND_STORE_URI, ARTIFACTS_DESTINATION; AUTH=1 for logins)
	@if [ -z "$(filter $(HOST),$(LOOPBACK))" ] && [ -z "$(AUTH)" ] && [ -z "$(ALLOW_UNAUTHENTICATED)" ]; then \
		echo "make server: HOST=$(HOST) is reachable from other machines and AUTH is off, so anyone on the network could read and change every run; use AUTH=1 (logins), or ALLOW_UNAUTHENTICATED=1 on a network you trust" >&2; exit 2; \
	fi
	@if [ -n "$(AUTH)" ]; then \
		[ -n "$$MLFLOW_AUTH_ADMIN_PASSWORD" ] || { echo "AUTH=1 needs MLFLOW_AUTH_ADMIN_PASSWORD (the admin's password; there is no default)"; exit 2; }; \
		printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///$(CURDIR)/mlruns/basic_auth.db\nadmin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' > $(AUTH_CONFIG); \
	fi
	@echo "Tracking server: export MLFLOW_TRACKING_URI=http://$(HOST):$(PORT); runs view: http://$(HOST):$(PORT)/#/experiments?workflowType=machine_learning"
	@# The auth app's CSRF key: yours if set (keep it equal across servers), else a fresh random one.
	MLFLOW_FLASK_SERVER_SECRET_KEY=$${MLFLOW_FLASK_SERVER_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')} \
	MLFLOW_AUTH_CONFIG_PATH=$(AUTH_CONFIG) MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server \
		--backend-store-uri "$(BACKEND_STORE_URI)" --serve-artifacts --artifacts-destination "$(ARTIFACTS_DESTINATION)" \
		--host $(HOST) --port $(PORT) --workers $(WORKERS) $(if $(AUTH),--app-name basic-auth,) \
		--allowed-hosts "$(ALLOWED_HOSTS)" --cors-allowed-origins "$(CORS_ALLOWED_ORIGINS)"

# Half of the fast suite's time is one core busy (process starts, TensorFlow imports, MLflow
# stores, servers starting), so two workers fill two cores; by file, so that a module's
# fixtures are built once.
test: $(STAMP) ## fast tests (real Keras training on small real image sets, real MLflow store)
	$(BIN)/pytest -n 2 --dist loadfile

test-unit: $(STAMP) ## tests that train nothing and start no server (seconds): the edit loop
	$(BIN)/pytest -m unit

test-full: $(STAMP) ## slow tests (pytest -m slow): full data, Chromium, a PostgreSQL-backed server
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; } \
		|| echo "make test-full: could not install chromium; the browser test will be skipped"
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql; } \
		|| echo "make test-full: could not install postgresql; the PostgreSQL server test will be skipped"
	$(BIN)/pytest -m slow

lint: $(STAMP) ## ruff: lint and check formatting (configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) ## benchmark our pipeline against the naive reference pipeline on the full data
	$(BIN)/python bench/pipeline.py $(ARGS)

bench-cnn: $(STAMP) ## one plain-CNN epoch: where the time goes, images/s, share of float32 peak, levers (~5 min)
	$(BIN)/python bench/cnn_speed.py $(ARGS)

bench-views: $(STAMP) ## features.train_views against fresh augmentation, 3 seeds each (~30 min)
	$(BIN)/python bench/views.py $(ARGS)

bench-head: $(STAMP) ## a transfer head fit on cached features: where its time goes, same-numerics levers (~3 min)
	$(BIN)/python bench/head_fit.py $(ARGS)

bench-search: $(STAMP) ## racing against plain random search at the same budget, 5 search seeds (~45 min)
	$(BIN)/python bench/search.py $(ARGS)

bench-onednn: $(STAMP) ## oneDNN off/on and process levers, phase by phase, fresh processes (ARGS="--isa avx2", "--commands")
	$(BIN)/python bench/onednn.py $(ARGS)

bench-table: $(STAMP) ## the replay's table of fits: 80 transfer settings x 10 seeds, per-image results (~75 min)
	$(BIN)/python bench/table.py $(ARGS)

bench-replay: $(STAMP) ## search policies replayed 2,000 times on the committed table (about 3 minutes)
	$(BIN)/python bench/replay.py $(ARGS)

clean: ## remove the venv and run outputs (keeps the MLflow store)
	rm -rf $(VENV) outputs multirun .pytest_cache
