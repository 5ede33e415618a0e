/*
 * cli.h - subcommands of the airlock binary.
 *
 * Each command is `int al_cmd_NAME(int argc, char **argv)` with argv[0] the
 * command name; it returns the process exit status (0 ok, 1 runtime error,
 * 2 usage error) and prints its own --help.
 */
#ifndef AL_CLI_CLI_H
#define AL_CLI_CLI_H

struct al_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* Defined in cmd_*.c */
int al_cmd_server(int argc, char **argv);
int al_cmd_model_stub(int argc, char **argv);
int al_cmd_sandbox(int argc, char **argv);
int al_cmd_audit(int argc, char **argv);
int al_cmd_worker(int argc, char **argv);
int al_cmd_demo(int argc, char **argv);
int al_cmd_gateway(int argc, char **argv);

#endif
