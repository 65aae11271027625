// Local chain for pkg/chain tests and demos: `npx hardhat node --config pkg/chain/hardhat.config.cjs`.
// No Solidity here on purpose: contracts are compiled by compile.ts with solc-js, so Hardhat never
// compiles (and never downloads a compiler); `paths.sources` points at an empty-of-.sol folder.
module.exports = {
  paths: { sources: './artifacts', cache: '../../out/hardhat-cache', artifacts: '../../out/hardhat-artifacts' },
  networks: {
    hardhat: {
      chainId: 31337,
      // Automine: each transaction gets its own block, so tests read state right after wait().
      mining: { auto: true, interval: 0 },
      accounts: {
        mnemonic: 'test test test test test test test test test test test junk',
        count: 12,
        accountsBalance: '10000000000000000000000', // 10,000 ETH
      },
    },
  },
};
