import { UsageError, parseOperatorFlags } from './config.js';

describe('tessera-operator flags', () => {
  it.each<[string, string[], NodeJS.ProcessEnv, unknown]>([
    ['no scheduler: in-process', [], {}, { planner: 'in-process', plannerConfig: {} }],
    ['--scheduler: grpc', ['--scheduler', 'sched.ns.svc:7070'], {}, { planner: 'grpc', plannerConfig: { scheduler: 'sched.ns.svc:7070' } }],
    ['env: grpc', [], { TESSERA_SCHEDULER_ADDR: '10.0.0.1:7070' }, { planner: 'grpc', plannerConfig: { scheduler: '10.0.0.1:7070' } }],
    ['flag over env, explicit planner, deadline', ['--scheduler=a:1', '--planner=in-process', '--scheduler-deadline-ms=500'], { TESSERA_SCHEDULER_ADDR: 'b:2' }, { planner: 'in-process', plannerConfig: { scheduler: 'a:1', deadlineMs: 500 } }],
  ])('%s', (_name, argv, env, want) => {
    expect(parseOperatorFlags(argv, env)).toEqual(want);
  });

  it.each<[string[], RegExp]>([
    [['--planner', 'magic'], /--planner must be one of grpc, in-process, got "magic"/],
    [['--planner', 'grpc'], /--planner grpc needs --scheduler/],
    [['--scheduler', 'no-port'], /--scheduler must be host:port, got "no-port"/],
    [['--scheduler-deadline-ms', '0', '--scheduler', 'a:1'], /--scheduler-deadline-ms must be an integer > 0/],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseOperatorFlags(argv, {})).toThrow(UsageError);
    expect(() => parseOperatorFlags(argv, {})).toThrow(message);
  });
});
