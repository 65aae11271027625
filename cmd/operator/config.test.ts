import { UsageError, parseOperatorFlags } from './config.js';

describe('tessera-operator flags', () => {
  it.each<[string, string[], NodeJS.ProcessEnv, unknown]>([
    ['no scheduler: in-process', [], {}, { planner: 'in-process', plannerConfig: {}, resyncMs: 60_000, workerResources: {} }],
    ['--scheduler: grpc', ['--scheduler', 'sched.ns.svc:7070'], {}, { planner: 'grpc', plannerConfig: { scheduler: 'sched.ns.svc:7070' }, resyncMs: 60_000, workerResources: {} }],
    ['env: grpc', [], { TESSERA_SCHEDULER_ADDR: '10.0.0.1:7070' }, { planner: 'grpc', plannerConfig: { scheduler: '10.0.0.1:7070' }, resyncMs: 60_000, workerResources: {} }],
    ['flag over env, explicit planner, deadline', ['--scheduler=a:1', '--planner=in-process', '--scheduler-deadline-ms=500'], { TESSERA_SCHEDULER_ADDR: 'b:2' }, { planner: 'in-process', plannerConfig: { scheduler: 'a:1', deadlineMs: 500 }, resyncMs: 60_000, workerResources: {} }],
    ['resync from env, off by flag', ['--resync-ms', '0'], { TESSERA_RESYNC_MS: '5000' }, { planner: 'in-process', plannerConfig: {}, resyncMs: 0, workerResources: {} }],
    ['resync from env', [], { TESSERA_RESYNC_MS: '5000' }, { planner: 'in-process', plannerConfig: {}, resyncMs: 5000, workerResources: {} }],
  ])('%s', (_name, argv, env, want) => {
    expect(parseOperatorFlags(argv, env)).toEqual(want);
  });

  it('TESSERA_WORKER_RESOURCES: the chart\'s JSON becomes the stage containers\' requests and limits; anything else is refused naming it', () => {
    expect(parseOperatorFlags([], { TESSERA_WORKER_RESOURCES: '{"requests":{"cpu":"1","memory":"2Gi"},"limits":{"cpu":4,"memory":"16Gi"}}' })).toMatchObject({
      workerResources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '16Gi' } },
    });
    expect(() => parseOperatorFlags([], { TESSERA_WORKER_RESOURCES: '{cpu: 1}' })).toThrow(/TESSERA_WORKER_RESOURCES is not JSON/);
    expect(() => parseOperatorFlags([], { TESSERA_WORKER_RESOURCES: '{"cpu":"1"}' })).toThrow('TESSERA_WORKER_RESOURCES: unknown key "cpu" (requests, limits)');
    expect(() => parseOperatorFlags([], { TESSERA_WORKER_RESOURCES: '{"limits":{"memory":null}}' })).toThrow('TESSERA_WORKER_RESOURCES.limits.memory must be a quantity, got null');
    expect(() => parseOperatorFlags([], { TESSERA_WORKER_RESOURCES: '[]' })).toThrow(UsageError);
  });

  it.each<[string[], RegExp]>([
    [['--planner', 'magic'], /--planner must be one of grpc, in-process, got "magic"/],
    [['--planner', 'grpc'], /--planner grpc needs --scheduler/],
    [['--scheduler', 'no-port'], /--scheduler must be host:port, got "no-port"/],
    [['--scheduler-deadline-ms', '0', '--scheduler', 'a:1'], /--scheduler-deadline-ms must be an integer > 0/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--resync-ms', 'soon'], /--resync-ms must be an integer >= 0, got "soon"/],
    [['--resync-ms=-1'], /--resync-ms must be an integer >= 0, got "-1"/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseOperatorFlags(argv, {})).toThrow(UsageError);
    expect(() => parseOperatorFlags(argv, {})).toThrow(message);
  });
});
