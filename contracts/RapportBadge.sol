// SPDX-License-Identifier: AGPL-3.0-or-later
// A minimal ERC-721 for Rapport's tests: membership badges the brand mints.
pragma solidity ^0.8.20;

contract RapportBadge {
    string public name;
    string public symbol;
    address public owner;
    uint256 public nextId = 1;
    mapping(uint256 => address) public ownerOf;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
        owner = msg.sender;
    }

    function mint(address to) external returns (uint256 id) {
        require(msg.sender == owner, "only owner");
        id = nextId++;
        ownerOf[id] = to;
        balanceOf[to] += 1;
        emit Transfer(address(0), to, id);
    }

    function transferFrom(address from, address to, uint256 id) external {
        require(ownerOf[id] == from, "not owner");
        require(msg.sender == from, "not allowed");
        ownerOf[id] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        emit Transfer(from, to, id);
    }
}
