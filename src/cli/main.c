/*
 * main.c - the airlock binary: dispatch to a subcommand.
 */
#include "cli/cli.h"
#include "core/alloc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct al_command commands[] = {
    {"server", "run the control plane (Managed Agents API and agent loop)", al_cmd_server},
    {"audit", "tamper-evident audit log: keygen, verify, write", al_cmd_audit},
    {"model-stub", "scripted Messages API server (a test double)", al_cmd_model_stub},
    {"sandbox", "run a command in an isolated sandbox, or serve its tools over MCP",
     al_cmd_sandbox},
    {"worker", "self-hosted worker: run tool calls inside your perimeter", al_cmd_worker},
    {"gateway", "MCP gateway in front of private MCP servers (routes, TLS, audit)", al_cmd_gateway},
    {"demo", "the end-to-end demo: control plane, model, worker, one session", al_cmd_demo},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: airlock [--help] [--version] COMMAND [ARGS...]\n\n"
		   "airlock runs AI agents without your data leaving your perimeter.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'airlock COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	al_alloc_init();
	/* Peers that vanish mid-write must surface as EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("airlock %s\n", AL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "airlock: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
