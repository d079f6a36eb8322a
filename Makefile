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
# fixed order; a part that does not exist yet is skipped.
SQL_PART_ORDER = schema config identity queue security credits marketplace search \
                 sessions earnings payments payouts operations
SQL_PARTS = $(wildcard $(patsubst %,extension/%.sql,$(SQL_PART_ORDER)))

DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard extension/$(EXTENSION)--*--*.sql)
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql output_iso tmp_install

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
              -Wmissing-prototypes -Werror=implicit-function-declaration

# Suites: every sql/*.sql, alphabetical; every test/specs/*.spec.
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pgtap --load-extension=pg_trgm --load-extension=$(EXTENSION)
ISOLATION = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso \
                 --load-extension=pg_trgm --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: extension/header.sql $(SQL_PARTS) $(EXTENSION).control
	cat extension/header.sql $(SQL_PARTS) > $@

.PHONY: test demo bench sidecar deps
deps:
	scripts/ensure-deps

test:
	test/run

demo:
	demo/run

bench:
	bench/run
