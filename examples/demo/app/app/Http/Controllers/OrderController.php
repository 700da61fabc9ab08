<?php

namespace App\Http\Controllers;

use App\Models\Order;
use Illuminate\Http\Request;

class OrderController extends Controller
{
    public function index(Request $request)
    {
        return Order::query()->latest()->paginate(20);
    }

    public function store(Request $request)
    {
        $order = Order::create($request->validate([
            'customer' => 'required|string',
            'total_cents' => 'required|integer|min:0',
        ]));

        return response()->json($order, 201);
    }
}
