/*
 * tinyhil's timing model as a QEMU TCG plugin (plugin API version 1, QEMU 7.2).
 *
 * QEMU counts instructions; this plugin adds an estimate of the cycles a real
 * core would take for the same instruction stream. It is deliberately dumb
 * about policy: every number comes from a configuration file that tinyhil
 * writes from the per-core timing table (harness/cycles/cores/<core>.toml)
 * and the target descriptor's memory system. For each executed translation
 * block (TB) it charges:
 *   base    the instructions' table costs, with the in-order pipeline rules
 *           computed once per TB at translation (load/store pipelining,
 *           load-use stalls, dual issue of allowed pairs without a RAW hazard);
 *   branch  the refill penalty when the TB's last instruction branched away
 *           (the next TB does not start right after it), or an exception entry;
 *   fetch   instruction fetch stalls: the TB's fetch lines through the region's
 *           instruction cache / flash accelerator model, else its wait states;
 *   data    load/store stalls from the memory callbacks: data cache model or
 *           the region's wait states.
 * Watched functions get inclusive per-call figures (entered at their first
 * address from a call, left when a TB starts at the return address); marks
 * print the running totals each time they are reached; "until" ends the run.
 *
 * Debian's QEMU ships no qemu-plugin.h, so the few v1 API declarations used are
 * below (they match include/qemu/qemu-plugin.h of QEMU 7.2).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API v1 (QEMU 7.2), declared by hand ---------------------- */
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                             enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                             void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
extern bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- configuration ------------------------------------------------------- */
enum kind {
    K_PLAIN, K_LOAD, K_STORE, K_LOAD_MULTIPLE, K_STORE_MULTIPLE, K_BRANCH, K_BRANCH_REGISTER, K_CALL,
    K_CALL_REGISTER, K_DIVIDE, K_IT, K_NOP, K_FP, K_FP_LOAD, K_FP_STORE, K_FP_LOAD_MULTIPLE,
    K_FP_STORE_MULTIPLE, K_COUNT
};
static const char *const KIND_NAMES[K_COUNT] = {
    "plain", "load", "store", "load_multiple", "store_multiple", "branch", "branch_register", "call",
    "call_register", "divide", "it", "nop", "fp", "fp_load", "fp_store", "fp_load_multiple",
    "fp_store_multiple"};

#define MAX_CLASSES 256
#define MAX_GROUPS 32
typedef struct {
    char name[48];
    int kind, cycles, per_reg, group;
    int latency; /* cycles from issue until a dependent instruction can issue; 0: the default */
    uint64_t count, total_cycles; /* filled at exit */
    uint64_t full_in;             /* instructions inside watched calls charged the plain class cost */
} klass_t;
static klass_t classes[MAX_CLASSES];
static int n_classes;

typedef struct { char *mnem; int klass; } entry_t;
static entry_t *table;
static size_t n_table, cap_table;

static int branch_penalty = 2, branch_register_penalty = 2, load_pipelining = 0, load_use_penalty = 0;
static int exception_entry = 12, dual_issue = 0, dual_issue_narrow = 0, default_cycles = 1, address_early = 0;
static int unaligned_target_penalty = 0;
static bool pairs[MAX_GROUPS][MAX_GROUPS];

typedef struct {
    int line_shift, sets, ways, miss_cycles, prefetch;
    uint64_t *tags; /* sets * ways; 0 = empty, else line + 1 */
    uint64_t last_line, accesses, misses;
} cache_t;
static cache_t caches[4];
static int n_caches;

typedef struct {
    uint64_t lo, hi;
    int read_ws, write_ws, fetch_ws, icache, dcache;
    char name[32];
} region_t;
static region_t regions[8];
static int n_regions;
static bool data_costs; /* some region charges data accesses: memory callbacks are needed */

typedef struct { uint64_t addr; char name[96]; uint64_t calls; } watch_t;
#define MAX_WATCH 64
static watch_t watches[MAX_WATCH];
static int n_watches;
static watch_t marks[MAX_WATCH];
static int n_marks;
static uint64_t until_addr = UINT64_MAX;
static FILE *out;

/* ---- running totals ------------------------------------------------------ */
typedef struct { uint64_t insns, cycles, base, branch, fetch, data; } totals_t;
static totals_t tot;
static uint64_t dual_saved, unclassified;

typedef struct { int watch; uint64_t ret; totals_t at; } frame_t;
#define MAX_DEPTH 256
static frame_t stack[MAX_DEPTH];
static int depth;

/* ---- per-TB and per-instruction data -------------------------------------- */
typedef struct tbinfo {
    uint64_t vaddr, end, last_vaddr;
    uint32_t n, base;
    int last_kind;        /* kind of the last instruction */
    bool last_pops_pc;    /* POP/LDM/LDR into pc: a register branch */
    bool wide_unaligned;  /* its first instruction is 32-bit at an address = 2 mod 4 */
    int watch, mark;      /* index or -1 */
    uint64_t execs;
    uint64_t execs_in;    /* executions inside a watched call */
    uint8_t *full;        /* n entries: charged exactly its class's cost (no pipelining/dual adjustment) */
    uint16_t *class_ids;  /* n entries */
    uint16_t *class_cost; /* n entries: the cost charged per instruction */
    struct tbinfo *next_all;
} tbinfo_t;
static tbinfo_t *all_tbs;
static tbinfo_t *prev_tb;
static int fetch_region_cache = -1;

static void note_unknown(const char *m);

/* ---- helpers ------------------------------------------------------------- */
static int lookup_exact(const char *m) {
    size_t lo = 0, hi = n_table;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(table[mid].mnem, m);
        if (c == 0) return table[mid].klass;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

static const char *const CONDS[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc",
                                    "hi", "ls", "ge", "lt", "gt", "le", "al", NULL};

static int strip_cond(char *m) {
    size_t len = strlen(m);
    if (len < 3) return 0;
    for (int i = 0; CONDS[i]; ++i) {
        if (strcmp(m + len - 2, CONDS[i]) == 0) { m[len - 2] = 0; return 1; }
    }
    return 0;
}

/* The class of a mnemonic: exact, then without .suffix / c. prefix / cond / 's'. */
static int classify(const char *mnemonic) {
    char m[64], base[64], t[64];
    snprintf(m, sizeof m, "%s", mnemonic);
    int k = lookup_exact(m);
    if (k >= 0) return k;
    snprintf(base, sizeof base, "%s", m);
    char *dot = strchr(base, '.');
    if (strncmp(base, "c.", 2) == 0) memmove(base, base + 2, strlen(base + 2) + 1);
    else if (dot) *dot = 0;
    if ((k = lookup_exact(base)) >= 0) return k;
    /* maybe only the data-type part after a second dot: vcvt.f32.s32 -> vcvt.f32 */
    snprintf(t, sizeof t, "%s", base);
    if (strip_cond(t) && (k = lookup_exact(t)) >= 0) return k;
    snprintf(t, sizeof t, "%s", base);
    size_t len = strlen(t);
    if (len > 1 && t[len - 1] == 's') {
        t[len - 1] = 0;
        if ((k = lookup_exact(t)) >= 0) return k;
        if (strip_cond(t) && (k = lookup_exact(t)) >= 0) return k;
    }
    snprintf(t, sizeof t, "%s", base);
    if (strip_cond(t)) {
        len = strlen(t);
        if (len > 1 && t[len - 1] == 's') {
            t[len - 1] = 0;
            if ((k = lookup_exact(t)) >= 0) return k;
        }
    }
    return -1;
}

/* Register number of an operand token, or -1: r0-r15 and aliases, s/d FP regs, RISC-V ABI names. */
static int reg_id(const char *tok, size_t len) {
    static const char *const NAMED[] = {"sb", "sl", "fp", "ip", "sp", "lr", "pc"};
    static const int NAMED_ID[] = {9, 10, 11, 12, 13, 14, 15};
    static const char *const RV[] = {"zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1",
                                     "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4",
                                     "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
    char t[8];
    if (len == 0 || len >= sizeof t) return -1;
    memcpy(t, tok, len);
    t[len] = 0;
    if ((t[0] == 'r' || t[0] == 'x') && isdigit((unsigned char)t[1])) return atoi(t + 1) & 31;
    if ((t[0] == 's' || t[0] == 'd' || t[0] == 'q') && isdigit((unsigned char)t[1])) {
        int n = atoi(t + 1);
        return 32 + (t[0] == 's' ? n / 2 : t[0] == 'd' ? n : n * 2) % 32;
    }
    for (int i = 0; i < 7; ++i) if (strcmp(t, NAMED[i]) == 0) return NAMED_ID[i];
    for (int i = 0; i < 32; ++i) if (strcmp(t, RV[i]) == 0) return 64 + i;
    return -1;
}

/* The registers of an operand string: the first (the usual destination) and a
 * bitmask of all; the register count between braces for LDM/STM/PUSH/POP. */
typedef struct {
    int first;
    uint64_t all[2];
    int listed;
    bool lists_pc;
    int regs[24]; /* every register operand in order (ranges expanded) */
    bool addr[24]; /* that operand is inside [...]: an address, read a stage earlier on some cores */
    int nregs;
} operands_t;

static void parse_operands(const char *ops, operands_t *o) {
    memset(o, 0, sizeof *o);
    o->first = -1;
    bool in_list = false, in_addr = false;
    const char *p = ops;
    while (*p) {
        if (*p == '[') { in_addr = true; ++p; continue; }
        if (*p == ']') { in_addr = false; ++p; continue; }
        if (*p == '{') { in_list = true; ++p; continue; }
        if (*p == '}') { in_list = false; ++p; continue; }
        if (isalpha((unsigned char)*p)) {
            const char *s = p;
            while (isalnum((unsigned char)*p)) ++p;
            int r = reg_id(s, (size_t)(p - s));
            if (r >= 0) {
                if (o->first < 0) o->first = r;
                o->all[r / 64] |= 1ull << (r % 64);
                if (o->nregs < 24) {
                    o->addr[o->nregs] = in_addr;
                    o->regs[o->nregs++] = r;
                }
                if (in_list) {
                    o->listed++;
                    if (r == 15) o->lists_pc = true;
                    /* a range r4-r7 */
                    if (*p == '-' && isalpha((unsigned char)p[1])) {
                        const char *s2 = ++p;
                        while (isalnum((unsigned char)*p)) ++p;
                        int r2 = reg_id(s2, (size_t)(p - s2));
                        if (r2 > r) {
                            o->listed += r2 - r;
                            if (r2 == 15) o->lists_pc = true;
                            for (int x = r + 1; x <= r2; ++x) {
                                o->all[x / 64] |= 1ull << (x % 64);
                                if (o->nregs < 24) {
                                    o->addr[o->nregs] = false;
                                    o->regs[o->nregs++] = x;
                                }
                            }
                        }
                    }
                }
            }
            continue;
        }
        ++p;
    }
}

static bool is_mem_kind(int k) {
    return k == K_LOAD || k == K_STORE || k == K_FP_LOAD || k == K_FP_STORE;
}
static bool is_load_kind(int k) { return k == K_LOAD || k == K_FP_LOAD; }
static bool writes_first(int k) {
    return !(k == K_STORE || k == K_STORE_MULTIPLE || k == K_FP_STORE || k == K_FP_STORE_MULTIPLE ||
             k == K_BRANCH || k == K_BRANCH_REGISTER || k == K_CALL || k == K_CALL_REGISTER || k == K_IT ||
             k == K_NOP);
}

static int region_of(uint64_t addr) {
    for (int i = 0; i < n_regions; ++i) {
        if (addr >= regions[i].lo && addr < regions[i].hi) return i;
    }
    return -1;
}

/* Cache lookup: true on a hit; fills the line on a miss (LRU within the set). */
static bool cache_access(cache_t *c, uint64_t addr, bool *sequential) {
    uint64_t line = addr >> c->line_shift;
    c->accesses++;
    *sequential = (line == c->last_line + 1);
    c->last_line = line;
    int set = (int)(line % (uint64_t)c->sets);
    uint64_t *ways = c->tags + (size_t)set * (size_t)c->ways;
    for (int w = 0; w < c->ways; ++w) {
        if (ways[w] == line + 1) {
            /* move to front: ways[0] is the most recently used */
            for (int x = w; x > 0; --x) ways[x] = ways[x - 1];
            ways[0] = line + 1;
            return true;
        }
    }
    c->misses++;
    for (int x = c->ways - 1; x > 0; --x) ways[x] = ways[x - 1];
    ways[0] = line + 1;
    return false;
}

static uint64_t fetch_cost(const tbinfo_t *tb) {
    int r = fetch_region_cache;
    if (r < 0 || tb->vaddr < regions[r].lo || tb->vaddr >= regions[r].hi) {
        r = region_of(tb->vaddr);
        fetch_region_cache = r;
    }
    if (r < 0) return 0;
    const region_t *g = &regions[r];
    if (g->icache >= 0) {
        cache_t *c = &caches[g->icache];
        uint64_t cost = 0;
        uint64_t first = tb->vaddr >> c->line_shift, last = (tb->end - 1) >> c->line_shift;
        for (uint64_t line = first; line <= last; ++line) {
            bool seq;
            if (!cache_access(c, line << c->line_shift, &seq) && !(c->prefetch && seq)) cost += (uint64_t)c->miss_cycles;
        }
        return cost;
    }
    if (g->fetch_ws == 0) return 0;
    /* no cache: one fetch of 32 bits per word the TB spans */
    return (uint64_t)g->fetch_ws * (((tb->end + 3) >> 2) - (tb->vaddr >> 2));
}

static void mem_cb(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *ud) {
    (void)vcpu;
    (void)ud;
    int r = region_of(vaddr);
    if (r < 0) return;
    const region_t *g = &regions[r];
    bool store = qemu_plugin_mem_is_store(info);
    uint64_t cost;
    if (g->dcache >= 0) {
        bool seq;
        cost = cache_access(&caches[g->dcache], vaddr, &seq) ? 0 : (uint64_t)caches[g->dcache].miss_cycles;
    } else {
        cost = (uint64_t)(store ? g->write_ws : g->read_ws);
    }
    tot.data += cost;
    tot.cycles += cost;
}

static void write_call(const watch_t *w, const totals_t *at) {
    if (!out) return;
    fprintf(out, "call %s %llu %llu %llu %llu %llu %llu\n", w->name,
            (unsigned long long)(tot.insns - at->insns), (unsigned long long)(tot.cycles - at->cycles),
            (unsigned long long)(tot.base - at->base), (unsigned long long)(tot.branch - at->branch),
            (unsigned long long)(tot.fetch - at->fetch), (unsigned long long)(tot.data - at->data));
    fflush(out);
}

static void finish(void);

static void tb_exec(unsigned int vcpu, void *ud) {
    (void)vcpu;
    tbinfo_t *tb = ud;
    tbinfo_t *prev = prev_tb;
    if (prev != NULL && tb->vaddr != prev->end) {
        int k = prev->last_kind;
        uint64_t pen;
        if (prev->last_pops_pc || k == K_BRANCH_REGISTER || k == K_CALL_REGISTER) pen = (uint64_t)branch_register_penalty;
        else if (k == K_BRANCH || k == K_CALL) pen = (uint64_t)branch_penalty;
        else pen = (uint64_t)exception_entry; /* left mid-stream: an exception or interrupt */
        /* a 32-bit target instruction straddling a fetch word takes one more fetch */
        if (tb->wide_unaligned) pen += (uint64_t)unaligned_target_penalty;
        tot.branch += pen;
        tot.cycles += pen;
    }
    /* returns: a TB at a watched frame's return address */
    while (depth > 0 && tb->vaddr == stack[depth - 1].ret) {
        --depth;
        if (stack[depth].watch >= 0) write_call(&watches[stack[depth].watch], &stack[depth].at);
    }
    if (tb->watch >= 0 && prev != NULL && (prev->last_kind == K_CALL || prev->last_kind == K_CALL_REGISTER) &&
        depth < MAX_DEPTH) {
        stack[depth].watch = tb->watch;
        stack[depth].ret = prev->end;
        stack[depth].at = tot;
        ++depth;
        watches[tb->watch].calls++;
    }
    if (tb->mark >= 0 && out) {
        fprintf(out, "mark %s %llu %llu\n", marks[tb->mark].name, (unsigned long long)tot.insns,
                (unsigned long long)tot.cycles);
    }
    tb->execs++;
    if (depth > 0) tb->execs_in++;
    tot.insns += tb->n;
    tot.base += tb->base;
    tot.cycles += tb->base;
    if (n_caches > 0 || n_regions > 0) {
        uint64_t f = fetch_cost(tb);
        tot.fetch += f;
        tot.cycles += f;
    }
    prev_tb = tb;
    if (tb->vaddr == until_addr) {
        finish();
        exit(0);
    }
}

static int watch_index(const watch_t *w, int n, uint64_t addr) {
    for (int i = 0; i < n; ++i) if (w[i].addr == addr) return i;
    return -1;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0) return;
    tbinfo_t *t = calloc(1, sizeof *t);
    t->class_ids = calloc(n, sizeof *t->class_ids);
    t->class_cost = calloc(n, sizeof *t->class_cost);
    t->full = calloc(n, sizeof *t->full);
    t->vaddr = qemu_plugin_tb_vaddr(tb);
    t->n = (uint32_t)n;
    t->watch = watch_index(watches, n_watches, t->vaddr);
    t->mark = watch_index(marks, n_marks, t->vaddr);
    int prev_kind = -1, prev_group = -1, prev_cost = 0, prev_dest = -1, prev_size = 0, prev_issue = 0;
    int clock = 0;       /* the TB's next free issue cycle */
    int ready[128] = {0}; /* per register: the cycle its value can be read */
    bool loaded[128] = {false}; /* per register: last written by a load (address_early applies) */
    bool prev_paired = false;
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *dis = qemu_plugin_insn_disas(insn);
        char mnem[64] = "";
        const char *ops = "";
        if (dis) {
            const char *p = dis;
            while (*p == ' ' || *p == '\t') ++p;
            /* QEMU's own disassemblers (RISC-V) print the encoding first: "00000297  auipc t0,0". */
            size_t hex = 0;
            while (isxdigit((unsigned char)p[hex])) ++hex;
            if ((hex == 4 || hex == 8) && (p[hex] == ' ' || p[hex] == '\t')) {
                p += hex;
                while (*p == ' ' || *p == '\t') ++p;
            }
            size_t len = 0;
            while (p[len] && p[len] != ' ' && p[len] != '\t' && len < sizeof mnem - 1) {
                mnem[len] = (char)tolower((unsigned char)p[len]);
                ++len;
            }
            mnem[len] = 0;
            ops = p + len;
        }
        int k = classify(mnem);
        int kind, cost, group;
        if (k < 0) {
            note_unknown(mnem);
            kind = K_PLAIN;
            cost = default_cycles;
            group = -1;
            k = n_classes; /* the 'unclassified' pseudo class */
        } else {
            kind = classes[k].kind;
            cost = classes[k].cycles;
            group = classes[k].group;
        }
        operands_t o;
        parse_operands(ops, &o);
        bool pops_pc = false;
        bool multiple = kind == K_LOAD_MULTIPLE || kind == K_STORE_MULTIPLE || kind == K_FP_LOAD_MULTIPLE ||
                        kind == K_FP_STORE_MULTIPLE;
        if (multiple) {
            int regs = o.listed;
            cost += classes[k].per_reg * (regs > 0 ? regs : 1);
            pops_pc = (kind == K_LOAD_MULTIPLE) && o.lists_pc;
        }
        if (kind == K_LOAD && o.first == 15) pops_pc = true; /* ldr pc, [...] */
        /* M3/M4: a load/store right after a load/store pipelines (1 cycle). */
        bool adjusted = false; /* charged other than its class's cost (pipelining, stalls, dual issue) */
        if (load_pipelining && is_mem_kind(kind) && is_mem_kind(prev_kind)) {
            cost = 1;
            adjusted = true;
        }
        /* Registers read and written: the destination is the first operand of an
         * instruction that writes one; LDM/POP write their list, read their base. */
        int dest = (!multiple && writes_first(kind)) ? o.first : -1;
        int first_src = dest >= 0 ? 1 : 0;
        int nsrc = (kind == K_LOAD_MULTIPLE || kind == K_FP_LOAD_MULTIPLE) ? (o.nregs > 0 ? 1 : 0) : o.nregs;
        /* RAW on the previous instruction (no dual issue across it) */
        bool raw = false;
        for (int r = first_src; r < nsrc; ++r) raw |= (o.regs[r] == prev_dest);
        /* in-order scoreboard within the TB: wait until every source is ready */
        int ready_at = 0;
        for (int r = first_src; r < nsrc; ++r) {
            int reg = o.regs[r];
            int need = reg >= 0 && reg < 128 ? ready[reg] + (o.addr[r] && loaded[reg] ? address_early : 0) : 0;
            if (need > ready_at) ready_at = need;
        }
        int stall = ready_at > clock ? ready_at - clock : 0;
        if (stall) {
            cost += stall;
            adjusted = true;
        }
        /* dual issue: this instruction joins the previous one in its cycle */
        int size = (int)qemu_plugin_insn_size(insn);
        if (i == 0) t->wide_unaligned = size == 4 && (qemu_plugin_insn_vaddr(insn) & 3u) == 2;
        bool narrow_ok = !dual_issue_narrow || (size == 2 && prev_size == 2);
        int issue;
        if (dual_issue && !prev_paired && prev_group >= 0 && group >= 0 && pairs[prev_group][group] && !raw &&
            narrow_ok && cost <= 1 && prev_cost >= 1 && i > 0) {
            t->class_cost[i] = 0;
            adjusted = true;
            prev_paired = true;
            issue = prev_issue;
        } else {
            t->class_cost[i] = (uint16_t)cost;
            prev_paired = false;
            issue = clock + stall;
            clock += cost;
        }
        prev_issue = issue;
        if (dest >= 0 && dest < 128) {
            /* when a dependent may issue: the class's result latency, else its issue
             * cycles, plus the load-use penalty for loads */
            int own = cost - stall > 0 ? cost - stall : 1;
            int lat = (k < n_classes && classes[k].latency > 0) ? classes[k].latency
                      : own + (is_load_kind(kind) ? load_use_penalty : 0);
            ready[dest] = issue + lat;
            loaded[dest] = is_load_kind(kind);
        }
        t->class_ids[i] = (uint16_t)k;
        t->full[i] = k < n_classes && !adjusted && !multiple;
        t->base += t->class_cost[i];
        if (data_costs && (is_mem_kind(kind) || multiple)) {
            qemu_plugin_register_vcpu_mem_cb(insn, mem_cb, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        }
        prev_kind = kind;
        prev_size = size;
        prev_group = group;
        prev_cost = cost;
        prev_dest = dest;
        if (i == n - 1) {
            t->last_kind = kind;
            t->last_pops_pc = pops_pc;
            t->last_vaddr = qemu_plugin_insn_vaddr(insn);
            t->end = t->last_vaddr + qemu_plugin_insn_size(insn);
        }
        free(dis);
    }
    t->next_all = all_tbs;
    all_tbs = t;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
}

static int finished;
/* Mnemonics no class lists (charged default_cycles), reported at exit. */
#define MAX_UNKNOWN 64
static char unknown_names[MAX_UNKNOWN][32];
static int n_unknown;

static void note_unknown(const char *m) {
    for (int i = 0; i < n_unknown; ++i) if (strcmp(unknown_names[i], m) == 0) return;
    if (n_unknown < MAX_UNKNOWN) snprintf(unknown_names[n_unknown++], sizeof unknown_names[0], "%s", m[0] ? m : "?");
}

static void finish(void) {
    if (finished || !out) return;
    finished = 1;
    /* per-class totals and the dual-issue saving, from each TB's executions */
    uint64_t unclassified_cycles = 0;
    for (tbinfo_t *t = all_tbs; t; t = t->next_all) {
        if (!t->execs) continue;
        for (uint32_t i = 0; i < t->n; ++i) {
            int k = t->class_ids[i];
            if (k < n_classes) {
                classes[k].count += t->execs;
                classes[k].total_cycles += t->execs * t->class_cost[i];
                if (t->class_cost[i] == 0) dual_saved += t->execs * (uint64_t)classes[k].cycles;
                if (t->full[i]) classes[k].full_in += t->execs_in;
            } else {
                unclassified += t->execs;
                unclassified_cycles += t->execs * t->class_cost[i];
            }
        }
    }
    for (int i = 0; i < n_watches; ++i) {
        /* calls still open (the run ended inside them) are not reported */
        fprintf(out, "watch %s %llu\n", watches[i].name, (unsigned long long)watches[i].calls);
    }
    for (int k = 0; k < n_classes; ++k) {
        if (classes[k].count)
            fprintf(out, "class %s %s %llu %llu\n", classes[k].name, KIND_NAMES[classes[k].kind],
                    (unsigned long long)classes[k].count, (unsigned long long)classes[k].total_cycles);
    }
    for (int k = 0; k < n_classes; ++k) {
        if (classes[k].full_in)
            fprintf(out, "wclass %s %llu\n", classes[k].name, (unsigned long long)classes[k].full_in);
    }
    if (unclassified)
        fprintf(out, "class unclassified plain %llu %llu\n", (unsigned long long)unclassified,
                (unsigned long long)unclassified_cycles);
    for (int i = 0; i < n_unknown; ++i) fprintf(out, "unknown %s\n", unknown_names[i]);
    for (int c = 0; c < n_caches; ++c)
        fprintf(out, "cache %d %llu %llu\n", c, (unsigned long long)caches[c].accesses,
                (unsigned long long)caches[c].misses);
    fprintf(out, "total %llu %llu %llu %llu %llu %llu %llu\n", (unsigned long long)tot.insns,
            (unsigned long long)tot.cycles, (unsigned long long)tot.base, (unsigned long long)tot.branch,
            (unsigned long long)tot.fetch, (unsigned long long)tot.data, (unsigned long long)dual_saved);
    fprintf(out, "end\n");
    fflush(out);
}

static void at_exit(qemu_plugin_id_t id, void *ud) {
    (void)id;
    (void)ud;
    finish();
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry_t *)a)->mnem, ((const entry_t *)b)->mnem);
}

static int kind_of(const char *name) {
    for (int k = 0; k < K_COUNT; ++k) if (strcmp(KIND_NAMES[k], name) == 0) return k;
    return -1;
}

static int load_config(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "tinyhil_cycles: cannot open %s\n", path);
        return -1;
    }
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        ++lineno;
        char a[128], b[128], c[128];
        long long x, y, z, w, v;
        unsigned long long u1, u2;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (strncmp(line, "out ", 4) == 0) {
            char p[512];
            sscanf(line + 4, "%511[^\n]", p);
            out = fopen(p, "w");
            if (!out) { fprintf(stderr, "tinyhil_cycles: cannot write %s\n", p); fclose(f); return -1; }
        } else if (sscanf(line, "param %127s %lld", a, &x) == 2) {
            if (!strcmp(a, "branch_penalty")) branch_penalty = (int)x;
            else if (!strcmp(a, "branch_register_penalty")) branch_register_penalty = (int)x;
            else if (!strcmp(a, "load_pipelining")) load_pipelining = (int)x;
            else if (!strcmp(a, "load_use_penalty")) load_use_penalty = (int)x;
            else if (!strcmp(a, "exception_entry")) exception_entry = (int)x;
            else if (!strcmp(a, "dual_issue")) dual_issue = (int)x;
            else if (!strcmp(a, "dual_issue_narrow")) dual_issue_narrow = (int)x;
            else if (!strcmp(a, "address_early")) address_early = (int)x;
            else if (!strcmp(a, "unaligned_target_penalty")) unaligned_target_penalty = (int)x;
            else if (!strcmp(a, "default_cycles")) default_cycles = (int)x;
        } else if (sscanf(line, "class %47s %47s %lld %lld %lld %lld", a, b, &x, &y, &z, &w) >= 5) {
            if (n_classes >= MAX_CLASSES - 1 || kind_of(b) < 0) goto bad;
            klass_t *k = &classes[n_classes++];
            snprintf(k->name, sizeof k->name, "%s", a);
            k->kind = kind_of(b);
            k->cycles = (int)x;
            k->per_reg = (int)y;
            k->group = z >= 0 && z < MAX_GROUPS ? (int)z : -1;
            k->latency = sscanf(line, "class %*s %*s %*d %*d %*d %lld", &w) == 1 && w > 0 ? (int)w : 0;
        } else if (sscanf(line, "insn %63s %lld", a, &x) == 2) {
            if (x < 0 || x >= n_classes) goto bad;
            if (n_table == cap_table) {
                cap_table = cap_table ? cap_table * 2 : 256;
                table = realloc(table, cap_table * sizeof *table);
            }
            table[n_table].mnem = strdup(a);
            table[n_table].klass = (int)x;
            ++n_table;
        } else if (sscanf(line, "pair %lld %lld", &x, &y) == 2) {
            if (x < 0 || y < 0 || x >= MAX_GROUPS || y >= MAX_GROUPS) goto bad;
            pairs[x][y] = true;
        } else if (sscanf(line, "cache %lld %lld %lld %lld %lld", &x, &y, &z, &w, &v) == 5) {
            /* size line ways miss_cycles prefetch */
            if (n_caches >= 4 || y <= 0 || z <= 0 || (y & (y - 1))) goto bad;
            cache_t *cc = &caches[n_caches++];
            int shift = 0;
            while ((1ll << shift) < y) ++shift;
            cc->line_shift = shift;
            cc->ways = (int)z;
            cc->sets = (int)(x / y / z) > 0 ? (int)(x / y / z) : 1;
            cc->miss_cycles = (int)w;
            cc->prefetch = (int)v;
            cc->tags = calloc((size_t)cc->sets * (size_t)cc->ways, sizeof *cc->tags);
            cc->last_line = UINT64_MAX - 1;
        } else if (sscanf(line, "region %llx %llx %lld %lld %lld %lld %lld %31s", &u1, &u2, &x, &y, &z, &w, &v, a) == 8) {
            if (n_regions >= 8 || w >= n_caches || v >= n_caches) goto bad;
            region_t *g = &regions[n_regions++];
            g->lo = u1;
            g->hi = u2;
            g->read_ws = (int)x;
            g->write_ws = (int)y;
            g->fetch_ws = (int)z;
            g->icache = (int)w;
            g->dcache = (int)v;
            snprintf(g->name, sizeof g->name, "%s", a);
        } else if (sscanf(line, "watch %llx %95s", &u1, c) == 2) {
            if (n_watches >= MAX_WATCH) goto bad;
            watches[n_watches].addr = u1;
            snprintf(watches[n_watches].name, sizeof watches[n_watches].name, "%s", c);
            ++n_watches;
        } else if (sscanf(line, "mark %llx %95s", &u1, c) == 2) {
            if (n_marks >= MAX_WATCH) goto bad;
            marks[n_marks].addr = u1;
            snprintf(marks[n_marks].name, sizeof marks[n_marks].name, "%s", c);
            ++n_marks;
        } else if (sscanf(line, "until %llx", &u1) == 1) {
            until_addr = u1;
        } else {
            goto bad;
        }
    }
    fclose(f);
    qsort(table, n_table, sizeof *table, cmp_entry);
    for (int r = 0; r < n_regions; ++r) {
        if (regions[r].read_ws || regions[r].write_ws || regions[r].dcache >= 0) data_costs = true;
    }
    return 0;
bad:
    fprintf(stderr, "tinyhil_cycles: %s:%d: cannot read: %s", path, lineno, line);
    fclose(f);
    return -1;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    const char *cfg = NULL;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "cfg=", 4) == 0) cfg = argv[i] + 4;
    }
    if (!cfg) {
        fprintf(stderr, "tinyhil_cycles: usage: -plugin tinyhil_cycles.so,cfg=FILE\n");
        return -1;
    }
    if (load_config(cfg) != 0) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
