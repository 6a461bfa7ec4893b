{
  'variables': {
    # 1 when the compiler knows the AMX flags (GCC >= 11, Clang >= 12): the AMX bf16 kernel is built
    'evometa_amx%': '<!(node native/tools/cxx-flags.mjs -mamx-tile -mamx-bf16)',
  },
  # evometa native addon. One binary carries every SIMD variant: each ISA's kernels are a
  # separate static library compiled with that ISA's flags, chosen at run time by CPU
  # detection (native/core/cpu.cc). Never -march=native. The noise generator is compiled
  # with -ffp-contract=off so it matches lib/rng/philox.ts bit for bit.
  'target_defaults': {
    'cflags': ['-fPIC', '-O3', '-fno-math-errno', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-uninitialized', '-Wno-maybe-uninitialized'],
    'cflags_cc': ['-std=c++17'],
    'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
    'include_dirs': ['native'],
    'conditions': [
      ['target_arch=="x64"', { 'defines': ['EVOMETA_X64=1'] }],
      ['OS=="mac"', { 'xcode_settings': { 'GCC_ENABLE_CPP_EXCEPTIONS': 'YES', 'OTHER_CPLUSPLUSFLAGS': ['-std=c++17'] } }],
    ],
  },
  'targets': [
    {
      'target_name': 'evometa_isa_scalar',
      'type': 'static_library',
      'sources': ['native/isa/isa_scalar.cc'],
    },
    {
      'target_name': 'evometa_noise',
      'type': 'static_library',
      'cflags': ['-ffp-contract=off'],
      'sources': ['native/core/noise.cc'],
    },
    {
      'target_name': 'evometa_native',
      'sources': [
        'native/addon.cc',
        'native/napi/args.cc',
        'native/napi/guard.cc',
        'native/napi/job.cc',
        'native/napi/ops.cc',
        'native/napi/population.cc',
        'native/napi/memstats.cc',
        'native/napi/bf16.cc',
        'native/core/cpu.cc',
        'native/core/threadpool.cc',
        'native/core/ops_conv.cc',
        'native/core/ops_bn.cc',
        'native/core/ops_bn_relu_pool.cc',
        'native/core/ops_misc.cc',
        'native/core/ops_rotate.cc',
        'native/core/population.cc',
        'native/core/population_plan.cc',
        'native/core/noise_store.cc',
        'native/core/peak.cc',
        'native/core/bf16.cc',
        'native/core/bf16_check.cc',
      ],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_CPP_EXCEPTIONS_ALL', 'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS'],
      'dependencies': ['evometa_isa_scalar', 'evometa_noise'],
      'conditions': [
        ['target_arch=="x64"', {
          'dependencies': ['evometa_isa_avx2', 'evometa_isa_avx512', 'evometa_noise_avx512', 'evometa_isa_avx512bf16'],
        }],
        ['target_arch=="x64" and evometa_amx==1', {
          'dependencies': ['evometa_isa_amx'],
          'defines': ['EVOMETA_AMX=1'],
        }],
      ],
    },
    {
      # PJRT runtime binding for the xla device (lib/device/xla): a separate addon, so
      # evometa_native never depends on it. Loads PJRT plugins with dlopen at run time.
      'target_name': 'evometa_pjrt',
      'sources': ['native/pjrt/addon.cc', 'native/pjrt/runtime.cc'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_CPP_EXCEPTIONS_ALL'],
      'libraries': ['-ldl'],
    },
  ],
  'conditions': [
    ['target_arch=="x64" and evometa_amx==1', {
      'targets': [
        {
          'target_name': 'evometa_isa_amx',
          'type': 'static_library',
          'cflags': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx512bf16', '-mavx2', '-mfma', '-mamx-tile', '-mamx-bf16'],
          'sources': ['native/isa/isa_amx.cc'],
        },
      ],
    }],
    ['target_arch=="x64"', {
      'targets': [
        {
          'target_name': 'evometa_isa_avx2',
          'type': 'static_library',
          'cflags': ['-mavx2', '-mfma', '-mf16c'],
          'sources': ['native/isa/isa_avx2.cc'],
        },
        {
          'target_name': 'evometa_isa_avx512',
          'type': 'static_library',
          'cflags': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx2', '-mfma'],
          'sources': ['native/isa/isa_avx512.cc'],
        },
        {
          # bf16 conv kernels of the population loop (native/isa/isa_bf16.h), picked at run time
          # by native/core/bf16.cc; the AMX one also needs the Linux tile-data permission.
          'target_name': 'evometa_isa_avx512bf16',
          'type': 'static_library',
          'cflags': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx512bf16', '-mavx2', '-mfma'],
          'sources': ['native/isa/isa_avx512bf16.cc'],
        },
        {
          'target_name': 'evometa_noise_avx512',
          'type': 'static_library',
          'cflags': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-ffp-contract=off'],
          'sources': ['native/core/noise_avx512.cc'],
        },
      ],
    }],
  ],
}
