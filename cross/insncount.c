/*
 * insncount: a QEMU TCG plugin that counts the guest instructions a qemu-user run executes and
 * prints the total at exit, as "insns N" on stderr (or to the file named by outfile=PATH). With
 * symbols=K, also the K functions that executed the most ("sym N NAME" lines, by the symbol of
 * each block's first instruction: the program needs its symbol table, i.e. an unstripped build).
 *
 *   cc -shared -fPIC -O2 -o insncount.so cross/insncount.c
 *   qemu-mips -plugin ./insncount.so[,outfile=PATH][,symbols=K] PROGRAM ARGS...
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

static uint64_t *sym_counter(const char *name)
{
	if (!name)
		name = "?";
	size_t h = ((uintptr_t)name >> 3) * 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < SYMS; i++) {
		struct sym *e = &syms[(h + i) & (SYMS - 1)];
		if (e->name == name || !e->name) {
			e->name = name;
			return &e->count;
		}
	}
	return &syms[0].count; /* full: lumped with whatever is there */
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
	if (top > 0 && n > 0)
		qemu_plugin_register_vcpu_tb_exec_inline(
			tb, INLINE_ADD_U64,
			sym_counter(qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0))), n);
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
		} else {
			fprintf(stderr, "insncount: unknown argument '%s'\n", argv[i]);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	return 0;
}
