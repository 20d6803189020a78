// SPDX-License-Identifier: AGPL-3.0-or-later
// Benchmark helper: emits ERC-20-shaped Transfer logs (mints) without touching storage,
// so a local node can produce 100,000 real logs in seconds rather than minutes.
pragma solidity ^0.8.20;

contract TransferEmitter {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function emitTransfers(address[] calldata to, uint256 value) external {
        for (uint256 i = 0; i < to.length; i++) {
            emit Transfer(address(0), to[i], value);
        }
    }
}
