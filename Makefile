# agentmarket: PGXS build of the extension, plus the project's own targets.
#
#   make            build the module and the install script
#   make install    install into the server's directories (or DESTDIR)
#   make installcheck   pg_regress + isolation suites against a running server
#   make test       everything, on a throwaway cluster (installs what is missing)
#   make demo       a whole marketplace journey on a throwaway cluster
#   make bench      the benchmarks under bench/

EXTENSION  = agentmarket
# The version lives in the control file only.
EXTVERSION = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = agentmarket
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard extension/*.c)))

# The install script is the concatenation of the capability parts, in this
# fixed order.  Every extension/*.sql but the header and the upgrade scripts
# is a part, and the order must name each exactly once: the build stops when
# it names a missing part or leaves one out.
SQL_PART_ORDER = schema config schedules identity queue queue_protocol stripe instances queue_leases security credits credit_holds credit_upkeep lots marketplace search search_query search_relevance search_direct search_order search_scratch \
                 sessions earnings payments payouts reconcile lifecycle webhooks books secrets \
                 metering relays workspaces \
                 billing runtime spend \
                 pricing upgrades retention analytics hardening footer
SQL_PARTS = $(patsubst %,extension/%.sql,$(SQL_PART_ORDER))
SQL_PARTS_ON_DISK = $(filter-out extension/header.sql extension/$(EXTENSION)--%.sql,$(wildcard extension/*.sql))
ifneq ($(words $(SQL_PART_ORDER)),$(words $(sort $(SQL_PART_ORDER))))
$(error SQL_PART_ORDER names a part twice: $(SQL_PART_ORDER))
endif
ifneq ($(filter-out $(SQL_PARTS_ON_DISK),$(SQL_PARTS)),)
$(error SQL_PART_ORDER names parts that do not exist: $(filter-out $(SQL_PARTS_ON_DISK),$(SQL_PARTS)))
endif
ifneq ($(filter-out $(SQL_PARTS),$(SQL_PARTS_ON_DISK)),)
$(error extension parts missing from SQL_PART_ORDER: $(filter-out $(SQL_PARTS),$(SQL_PARTS_ON_DISK)))
endif

# Released install scripts stay installed, frozen (releases/), so
# CREATE EXTENSION agentmarket VERSION '0.1.0' works and the upgrade path
# from it is tested.  UPGRADES: the upgrade steps A--B, each built.
UPGRADES = 0.1.0--$(EXTVERSION)
UPGRADE_SCRIPTS = $(patsubst %,$(EXTENSION)--%.sql,$(UPGRADES))
DATA_built = $(EXTENSION)--$(EXTVERSION).sql $(UPGRADE_SCRIPTS)
DATA = $(wildcard releases/$(EXTENSION)--*.sql)
EXTRA_CLEAN = $(DATA_built) output_iso tmp_install

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
              -Wmissing-prototypes -Werror=implicit-function-declaration

# Suites: every sql/*.sql, alphabetical; every test/specs/*.spec.
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pgtap --load-extension=$(EXTENSION)
ISOLATION = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso \
                 --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS knows each object's .c only: a changed header rebuilds every object
# (and bitcode file) of the module, or a struct that changed size leaves old
# objects disagreeing with new ones (seen as crashes after a rebase).
$(OBJS) $(OBJS:.o=.bc): $(wildcard extension/*.h)

$(EXTENSION)--$(EXTVERSION).sql: extension/header.sql $(SQL_PARTS) $(EXTENSION).control
	cat extension/header.sql $(SQL_PARTS) > $@

.PHONY: test demo bench sidecar install-sidecar uninstall-sidecar deps
# The daemon: `make sidecar` (the directory of that name would otherwise make
# the target look up to date); `make install-sidecar [PREFIX=...] [DESTDIR=...]`
# installs it and its systemd unit (sidecar/Makefile).
sidecar:
	$(MAKE) -C sidecar

install-sidecar:
	$(MAKE) -C sidecar install

uninstall-sidecar:
	$(MAKE) -C sidecar uninstall

deps:
	scripts/ensure-deps

test:
	test/run

demo:
	demo/run

bench:
	bench/run

# An upgrade step A--B is built, not kept by hand (extension/upgrade/begin.sql
# explains it): the old version's schemas are set aside, this version's whole
# install script runs, the old rows come across as a pg_dump/pg_restore would
# carry them, and the old schemas go.  Only what a restore would not do is
# written per step: extension/upgrade/A--B.before.sql and A--B.after.sql.
$(EXTENSION)--%--$(EXTVERSION).sql: extension/header.sql extension/upgrade/begin.sql \
                     extension/upgrade/%--$(EXTVERSION).before.sql $(SQL_PARTS) extension/upgrade/carry.sql \
                     extension/upgrade/%--$(EXTVERSION).after.sql extension/upgrade/finish.sql $(EXTENSION).control
	cat extension/header.sql extension/upgrade/begin.sql extension/upgrade/$*--$(EXTVERSION).before.sql \
	    $(SQL_PARTS) extension/upgrade/carry.sql extension/upgrade/$*--$(EXTVERSION).after.sql \
	    extension/upgrade/finish.sql > $@
