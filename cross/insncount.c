/*
 * insncount: a QEMU TCG plugin that counts the guest instructions a qemu-user run executes and
 * prints the total at exit, as "insns N" on stderr (or to the file named by outfile=PATH). With
 * symbols=K, also the K functions that executed the most ("sym N NAME" lines, by the symbol of
 * each block's first instruction: the program needs its symbol table, i.e. an unstripped build).
 *
 *   cc -shared -fPIC -O2 -o insncount.so cross/insncount.c
 *   qemu-mips -plugin ./insncount.so[,outfile=PATH][,symbols=K[,callee=NAME[+NAME...]]] PROGRAM ARGS...
 *
 * Each translated block gets an inline add of its instruction count, run when the block starts
 * executing (a block left early by a signal or fault is counted whole: rare in the programs
 * measured here, and the same in a run and its baseline). One counter for the process: the
 * programs measured are single-threaded. Built by cross/count.sh; Debian's qemu-user ships the
 * plugin interface (qemu -plugin) but neither plugins nor the C header, so the few declarations
 * of the interface (version 1) are written out here. Tested with QEMU 7.2 (Debian 12): QEMU 9
 * reworked the inline-counter calls, so a newer qemu may refuse or need them updated.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
enum plugin_op { INLINE_ADD_U64 = 0 };

/* Provided by the qemu binary that loads the plugin. */
extern void qemu_plugin_register_vcpu_tb_trans_cb(
	plugin_id id, void (*cb)(plugin_id id, struct qemu_plugin_tb *tb));
extern void qemu_plugin_register_vcpu_tb_exec_inline(
	struct qemu_plugin_tb *tb, enum plugin_op op, void *ptr, uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn;
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
typedef void (*udata_cb)(unsigned int vcpu_index, void *userdata);
extern void qemu_plugin_register_vcpu_tb_exec_cb(
	struct qemu_plugin_tb *tb, udata_cb cb, int flags /* QEMU_PLUGIN_CB_NO_REGS */, void *userdata);
extern void qemu_plugin_register_atexit_cb(
	plugin_id id, void (*cb)(plugin_id id, void *userdata), void *userdata);

EXPORT int qemu_plugin_version = 1;

static uint64_t insns;
static char outfile[4096];

/* symbols=K: a counter per symbol, in an open-addressed table keyed by the name's pointer
 * (stable: it points into qemu's copy of the program's symbol table). Counters never move. */
#define SYMS (1 << 16)
struct sym {
	const char *name;
	uint64_t count;
};
static int top;
static struct sym syms[SYMS];
/* callee=NAME: counters by caller, and the last function other than NAME that ran. */
static char callee[256];
static struct sym callers[SYMS];
static const char *last_caller = "?";

static uint64_t *counter_in(struct sym *table, const char *name)
{
	if (!name)
		name = "?";
	size_t h = ((uintptr_t)name >> 3) * 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < SYMS; i++) {
		struct sym *e = &table[(h + i) & (SYMS - 1)];
		if (e->name == name || !e->name) {
			e->name = name;
			return &e->count;
		}
	}
	return &table[0].count; /* full: lumped with whatever is there */
}

static uint64_t *sym_counter(const char *name)
{
	return counter_in(syms, name);
}

/* Whether `name` is one of callee's '+'-separated names. */
static int is_callee(const char *name)
{
	size_t len = strlen(name);
	for (const char *p = callee; *p;) {
		const char *end = strchr(p, '+');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && strncmp(p, name, n) == 0)
			return 1;
		p += n + (end ? 1 : 0);
	}
	return 0;
}

/* A block of `callee` counts for the last caller; any other block becomes the last caller.
 * userdata: the block's symbol name, with its instruction count in a struct. */
struct block {
	const char *name;
	uint64_t n;
	int is_callee;
};

static void on_block(unsigned int vcpu, void *userdata)
{
	(void)vcpu;
	struct block *b = userdata;
	if (b->is_callee)
		*counter_in(callers, last_caller) += b->n;
	else
		last_caller = b->name;
}

static int by_count(const void *a, const void *b)
{
	uint64_t x = ((const struct sym *)a)->count, y = ((const struct sym *)b)->count;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
	(void)id;
	size_t n = qemu_plugin_tb_n_insns(tb);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &insns, n);
	if (top > 0 && n > 0) {
		const char *name = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
		qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, sym_counter(name), n);
		if (callee[0]) {
			/* One per translation (blocks are translated once and then reused). */
			struct block *b = malloc(sizeof *b);
			if (b) {
				b->name = name ? name : "?";
				b->n = n;
				b->is_callee = name && is_callee(name);
				qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, 0, b);
			}
		}
	}
}

static void on_exit_cb(plugin_id id, void *userdata)
{
	(void)id;
	(void)userdata;
	FILE *f = outfile[0] ? fopen(outfile, "w") : stderr;
	if (!f)
		f = stderr;
	fprintf(f, "insns %" PRIu64 "\n", insns);
	if (top > 0) {
		qsort(syms, SYMS, sizeof *syms, by_count);
		for (int i = 0; i < top && i < SYMS && syms[i].count; i++)
			fprintf(f, "sym %" PRIu64 " %s\n", syms[i].count, syms[i].name);
	}
	if (top > 0 && callee[0]) {
		qsort(callers, SYMS, sizeof *callers, by_count);
		for (int i = 0; i < top && i < SYMS && callers[i].count; i++)
			fprintf(f, "caller %" PRIu64 " %s\n", callers[i].count, callers[i].name);
	}
	if (f != stderr)
		fclose(f);
}

EXPORT int qemu_plugin_install(plugin_id id, const void *info, int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "outfile=", 8) == 0) {
			snprintf(outfile, sizeof outfile, "%s", argv[i] + 8);
		} else if (strncmp(argv[i], "symbols=", 8) == 0) {
			top = atoi(argv[i] + 8);
		} else if (strncmp(argv[i], "callee=", 7) == 0) {
			snprintf(callee, sizeof callee, "%s", argv[i] + 7);
		} else {
			fprintf(stderr, "insncount: unknown argument '%s'\n", argv[i]);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	return 0;
}
